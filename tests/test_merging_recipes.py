"""Every recipe in merge_recipes/ runs through the unmodified mergekit-yaml and gives what its formula says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import RECIPES, WITHOUT_BABYMERGE, mergekit_yaml_in_process, render, weights


@pytest.fixture(scope="module")
def parents(models, tmp_path_factory):
    from babymerge.sweep.merge import BASE, MULTIMODAL, TEXT

    init, text, mm = models[BASE], models[TEXT], models[MULTIMODAL]
    sample = tmp_path_factory.mktemp("sample") / "text.txt"
    sample.write_text("\n".join(["The cat sees a red ball.", "A dog runs to the big tree.", "The bird sleeps."] * 4))
    from babymerge.merging.fisher import beside, fisher_file
    from babymerge.merging.gram import gram_file

    grams = tmp_path_factory.mktemp("grams")
    gram_file(text, grams / "text.safetensors", text=sample, batch_size=4)
    gram_file(mm, grams / "multimodal.safetensors", text=sample, batch_size=4)
    for model in (text, mm):  # fisher.yml reads the statistics beside each model
        if not beside(model).exists():
            fisher_file(model, text=sample, progress=False)
    return {
        "init_model": init,
        "text_model": text,
        "multimodal_model": mm,
        "grams/text.safetensors": grams / "text.safetensors",
        "grams/multimodal.safetensors": grams / "multimodal.safetensors",
    }


@pytest.fixture(scope="module")
def merged(parents, tmp_path_factory):
    """Each recipe merged once by ``mergekit-yaml``'s entry function (test_merging_hook.py runs the command)."""
    tmp = tmp_path_factory.mktemp("merged")
    outs = {}
    for recipe in sorted(p.name for p in RECIPES.glob("*.yml")):
        out = tmp / recipe.removesuffix(".yml")
        extra = ("--random-seed", "7") if recipe.startswith("dare") else ()
        mergekit_yaml_in_process(render(recipe, tmp, parents), out, *extra)
        outs[recipe.removesuffix(".yml")] = out
    return outs


def test_every_recipe_gives_a_complete_folder(merged, parents):
    inputs = set(weights(parents["text_model"]))
    assert "model.black_image_features" in inputs
    for name, out in merged.items():
        files = {p.name for p in out.iterdir()}
        for wanted in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "README.md"):
            assert wanted in files, (name, wanted)
        assert {"modeling_babyllava.py", "configuration_babyllava.py", "mergekit_config.yml"} <= files, name
        assert set(weights(out)) == inputs, name
        assert json.loads((out / "config.json").read_text())["architectures"] == ["BabyLlavaForConditionalGeneration"]


@pytest.mark.parametrize("alpha", [0.3, 0.5, 0.8])
def test_linear_is_the_paper_formula(merged, parents, alpha):
    text, mm = weights(parents["text_model"]), weights(parents["multimodal_model"])
    out = weights(merged[f"linear_alpha{alpha}"])
    for name, tensor in out.items():
        expected = alpha * text[name] + (1 - alpha) * mm[name]
        assert tensor.dtype == torch.float32
        assert (tensor - expected).abs().max().item() <= 1e-6, name


@pytest.mark.parametrize(("recipe", "weight"), [("task_arithmetic", 0.7), ("modality_arithmetic", 1.0)])
def test_task_arithmetic_matches_reference(merged, parents, recipe, weight):
    init, text, mm = (weights(parents[k]) for k in ("init_model", "text_model", "multimodal_model"))
    out = weights(merged[recipe])
    for name, tensor in out.items():
        expected = init[name] + weight * (text[name] - init[name]) + weight * (mm[name] - init[name])
        torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-6, msg=name)


def ties_reference(base: torch.Tensor, others: list[torch.Tensor], density: float) -> torch.Tensor:
    """TIES (Yadav et al. 2023) written from the paper: trim to top-k magnitudes, elect sign by mass, disjoint mean."""
    trimmed = []
    for model in others:
        delta = (model - base).flatten()
        k = max(1, int(density * delta.numel()))
        keep = torch.zeros_like(delta)
        keep[delta.abs().topk(k).indices] = 1
        trimmed.append((delta * keep).reshape(base.shape))
    stacked = torch.stack(trimmed)
    elected = torch.where(stacked.sum(0) >= 0, 1.0, -1.0)
    agree = (torch.sign(stacked) == elected).float()
    count = agree.sum(0)
    merged = (stacked * agree).sum(0) / torch.where(count == 0, torch.ones_like(count), count)
    return base + merged


def test_ties_matches_reference(merged, parents):
    init, text, mm = (weights(parents[k]) for k in ("init_model", "text_model", "multimodal_model"))
    out = weights(merged["ties"])
    for name, tensor in out.items():
        expected = ties_reference(init[name], [text[name], mm[name]], density=0.5)
        torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-6, msg=name)


def test_per_module_takes_projector_from_multimodal(merged, parents):
    text, mm = weights(parents["text_model"]), weights(parents["multimodal_model"])
    out = weights(merged["per_module"])
    for name, tensor in out.items():
        if name.startswith(("model.multi_modal_projector.", "model.black_image_features")):
            assert torch.equal(tensor, mm[name]), name
        else:
            torch.testing.assert_close(tensor, 0.5 * text[name] + 0.5 * mm[name], rtol=0, atol=1e-6, msg=name)


def test_slerp_and_dare_stay_between_parents(merged, parents):
    text, mm = weights(parents["text_model"]), weights(parents["multimodal_model"])
    slerp = weights(merged["slerp"])
    name = "model.language_model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(slerp[name], text[name]) and not torch.equal(slerp[name], mm[name])
    assert torch.equal(weights(merged["dare_ties"])["model.black_image_features"], mm["model.black_image_features"])


def test_outputs_load_in_a_fresh_process_without_babymerge(merged):
    code = (
        WITHOUT_BABYMERGE
        + """
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
for folder in sys.argv[1:]:
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok(["The cat sees a ball."], return_tensors="pt")
    out = model(**ids)
    assert torch.isfinite(out.logits).all()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
print("loaded", len(sys.argv) - 1)
"""
    )
    folders = [str(merged[k]) for k in ("linear_alpha0.5", "ties", "regmean", "per_module")]
    env = {"HF_HUB_OFFLINE": "1", "BABYMERGE_NO_MERGEKIT_HOOK": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code, *folders], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"loaded {len(folders)}" in result.stdout


def test_model_card_names_method_and_parents(merged, parents):
    card = (merged["ties"] / "README.md").read_text()
    assert "TIES" in card
    assert str(Path(parents["text_model"]).resolve()) in card
