"""A LLaVA's language model merged with a text-only LM through mergekit: formulas, vision tensors, fresh loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import (
    REPO,
    WITHOUT_BABYMERGE,
    WORDS,
    mergekit_yaml,
    mergekit_yaml_in_process,
    render,
    save_llama_like,
    save_llava,
    save_text_lm,
    weights,
    word_tokenizer,
)

LLAVA_RECIPES = REPO / "merge_recipes" / "llava_text"


@pytest.fixture(scope="module")
def tokenizer():
    return word_tokenizer(WORDS)


@pytest.fixture(scope="module")
def parents(tmp_path_factory, tokenizer) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("llava_text")
    return {
        "clip_llama": save_llava(root / "clip_llama", tokenizer, "llama", "clip", seed=1),
        "llama": save_text_lm(root / "llama", tokenizer, "llama", seed=2),
        "llama_base": save_text_lm(root / "llama_base", tokenizer, "llama", seed=3),
        "siglip_qwen2": save_llava(root / "siglip_qwen2", tokenizer, "qwen2", "siglip", seed=4),
        "qwen2": save_text_lm(root / "qwen2", tokenizer, "qwen2", seed=5),
        "dinov2_mistral": save_llava(root / "dinov2_mistral", tokenizer, "mistral", "dinov2", seed=6),
        "mistral": save_text_lm(root / "mistral", tokenizer, "mistral", seed=7),
    }


@pytest.fixture(scope="module")
def babyllava_pair(make_checkpoint, tmp_path_factory) -> dict[str, Path]:
    """A tiny babyllava and a plain ``LlamaForCausalLM`` of its language model's shape and tokenizer."""
    mm = make_checkpoint(21)
    llama = save_llama_like(mm, tmp_path_factory.mktemp("babyllava_text") / "llama", seed=22)
    return {"multimodal_model": mm, "text_model": llama}


def lm_name(name: str) -> str:
    """A LLaVA tensor name in the text-only causal LM's layout (transformers saves ``language_model.model.*``)."""
    for prefix, text_prefix in (
        ("language_model.model.", "model."),
        ("language_model.lm_head.", "lm_head."),
        ("model.language_model.", "model."),
    ):
        if name.startswith(prefix):
            return text_prefix + name[len(prefix) :]
    return name


def is_vision(name: str) -> bool:
    return name.startswith(("vision_tower.", "multi_modal_projector.", "model.multi_modal_projector.")) or (
        name == "model.black_image_features"
    )


def recipe(method: str, models: list[tuple[Path, dict]], tmp: Path, **top) -> Path:
    import yaml

    data = {"merge_method": method, "dtype": "float32", **top}
    data["models"] = [{"model": str(path), **({"parameters": p} if p else {})} for path, p in models]
    file = tmp / f"{method}-{len(list(tmp.glob('*.yml')))}.yml"
    file.write_text(yaml.safe_dump(data, sort_keys=False))
    return file


def ties_reference(base: torch.Tensor, others: list[torch.Tensor], density: float) -> torch.Tensor:
    """TIES from Yadav et al. (2023): keep each delta's top-k magnitudes, elect the sign by mass, disjoint mean."""
    trimmed = []
    for other in others:
        delta = (other - base).flatten()
        keep = torch.zeros_like(delta, dtype=torch.bool)
        keep[delta.abs().topk(max(1, int(density * delta.numel()))).indices] = True
        trimmed.append(torch.where(keep, delta, 0).reshape(base.shape))
    stacked = torch.stack(trimmed)
    sign = torch.where(stacked.sum(0) >= 0, 1.0, -1.0)
    agree = torch.sign(stacked) == sign
    count = agree.sum(0).clamp(min=1)
    return base + torch.where(agree, stacked, 0).sum(0) / count


@pytest.mark.parametrize(
    ("mm", "text"), [("clip_llama", "llama"), ("siglip_qwen2", "qwen2"), ("dinov2_mistral", "mistral")]
)
def test_linear_gives_a_complete_llava(parents, tmp_path, mm, text):
    alpha = 0.3
    models = [(parents[mm], {"weight": 1 - alpha}), (parents[text], {"weight": alpha})]
    out = tmp_path / "out"
    mergekit_yaml_in_process(recipe("linear", models, tmp_path, parameters={"normalize": False}), out)
    got, m, t = weights(out), weights(parents[mm]), weights(parents[text])
    assert set(got) == set(m)
    assert sum(is_vision(n) for n in got) > 10
    for name, tensor in got.items():
        if is_vision(name):
            assert torch.equal(tensor, m[name]), name
        else:
            expected = (1 - alpha) * m[name] + alpha * t[lm_name(name)]
            torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-7, msg=name)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlavaForConditionalGeneration"]
    assert config["vision_config"] == json.loads((parents[mm] / "config.json").read_text())["vision_config"]
    kept = {"processor_config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"}
    assert kept <= {p.name for p in out.iterdir()}
    assert (out / "processor_config.json").read_bytes() == (parents[mm] / "processor_config.json").read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_alpha_endpoints_are_bitwise_parents(parents, tmp_path, alpha):
    models = [(parents["clip_llama"], {"weight": 1 - alpha}), (parents["llama"], {"weight": alpha})]
    out = tmp_path / "out"
    mergekit_yaml_in_process(recipe("linear", models, tmp_path, parameters={"normalize": False}), out)
    m, t = weights(parents["clip_llama"]), weights(parents["llama"])
    for name, tensor in weights(out).items():
        source = m[name] if alpha == 0.0 or is_vision(name) else t[lm_name(name)]
        assert torch.equal(tensor, source), name


def shipped(recipe_name: str, parents: dict[str, Path], tmp: Path) -> Path:
    paths = {"multimodal_model": parents["clip_llama"], "text_model": parents["llama"]}
    paths["init_model"] = parents["llama_base"]
    return render(f"llava_text/{recipe_name}.yml", tmp, paths)


# The shipped recipes with a text-only base: the LM tensors each recipe's formula gives from (base, multimodal, text).
WITH_A_BASE = {
    "ties": lambda b, m, t: ties_reference(b, [m, t], density=0.5),
    "task_arithmetic": lambda b, m, t: b + 0.7 * (m - b) + 0.7 * (t - b),
}


@pytest.mark.parametrize("recipe", sorted(WITH_A_BASE))
def test_merges_with_a_text_only_base_match_their_formula(parents, tmp_path, recipe):
    out = tmp_path / "out"
    mergekit_yaml_in_process(shipped(recipe, parents, tmp_path), out)
    got, m, t, b = (weights(p) for p in (out, parents["clip_llama"], parents["llama"], parents["llama_base"]))
    assert set(got) == set(m)
    for name, tensor in got.items():
        if is_vision(name):
            assert torch.equal(tensor, m[name]), name
        else:
            n = lm_name(name)
            expected = WITH_A_BASE[recipe](b[n], m[name], t[n])
            torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-6, msg=name)


def test_text_model_first_gives_the_merged_language_model_alone(parents, tmp_path):
    models = [(parents["qwen2"], {"weight": 0.5}), (parents["siglip_qwen2"], {"weight": 0.5})]
    out = tmp_path / "out"
    mergekit_yaml_in_process(recipe("linear", models, tmp_path), out)
    got, m, t = weights(out), weights(parents["siglip_qwen2"]), weights(parents["qwen2"])
    assert set(got) == set(t)
    for name, tensor in got.items():
        (mm_name,) = [k for k in m if lm_name(k) == name]
        torch.testing.assert_close(tensor, 0.5 * t[name] + 0.5 * m[mm_name], rtol=0, atol=1e-7, msg=name)
    assert json.loads((out / "config.json").read_text())["architectures"] == ["Qwen2ForCausalLM"]


@pytest.mark.parametrize("first", ["multimodal_model", "text_model"])
def test_babyllava_with_plain_llama_in_both_directions(babyllava_pair, tmp_path, first):
    second = "text_model" if first == "multimodal_model" else "multimodal_model"
    models = [(babyllava_pair[first], {"weight": 0.5}), (babyllava_pair[second], {"weight": 0.5})]
    out = tmp_path / "out"
    mergekit_yaml_in_process(recipe("linear", models, tmp_path), out)
    got, m, t = weights(out), weights(babyllava_pair["multimodal_model"]), weights(babyllava_pair["text_model"])
    assert set(got) == set(m if first == "multimodal_model" else t)
    for name, tensor in got.items():
        if is_vision(name):
            assert torch.equal(tensor, m[name]), name
            continue
        if first == "multimodal_model":
            mm_name, text_name = name, lm_name(name)
        else:
            mm_name, text_name = name.replace("model.", "model.language_model.", 1), name
        torch.testing.assert_close(tensor, 0.5 * m[mm_name] + 0.5 * t[text_name], rtol=0, atol=1e-7, msg=name)
    files = {p.name for p in out.iterdir()}
    if first == "multimodal_model":
        assert {"modeling_babyllava.py", "configuration_babyllava.py"} <= files
    else:
        assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]


@pytest.fixture(scope="module")
def cli_outputs(parents, babyllava_pair, tmp_path_factory) -> dict[str, Path]:
    """Merges made by the unmodified ``mergekit-yaml`` console script and by ``babymerge merge`` (placeholders)."""
    from babymerge.cli import main

    tmp = tmp_path_factory.mktemp("cli")
    outs = {"llava": tmp / "llava", "llama": tmp / "llama", "babyllava": tmp / "babyllava"}
    paths = {"multimodal_model": parents["clip_llama"], "text_model": parents["llama"]}
    done = mergekit_yaml(render("llava_text/linear_alpha0.5.yml", tmp, paths), outs["llava"])
    assert done.returncode == 0, done.stderr[-2000:]
    recipe_file = str(LLAVA_RECIPES / "text_only_linear_alpha0.5.yml")
    assert main(["merge", recipe_file, str(outs["llama"])] + [f"--model={k}={v}" for k, v in paths.items()]) == 0
    babyllava = [f"--model={k}={v}" for k, v in babyllava_pair.items()]
    assert main(["merge", str(LLAVA_RECIPES / "linear_alpha0.5.yml"), str(outs["babyllava"])] + babyllava) == 0
    return outs


def test_console_script_and_babymerge_merge(cli_outputs, parents):
    m, t = weights(parents["clip_llama"]), weights(parents["llama"])
    for name, tensor in weights(cli_outputs["llava"]).items():
        expected = m[name] if is_vision(name) else 0.5 * t[lm_name(name)] + 0.5 * m[name]
        torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-7, msg=name)
    assert set(weights(cli_outputs["llama"])) == set(t)


def test_outputs_load_and_generate_where_babymerge_is_not_importable(cli_outputs):
    code = (
        WITHOUT_BABYMERGE
        + """
import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer
llava, llama, babyllava = sys.argv[1:]
model = AutoModelForImageTextToText.from_pretrained(llava)
assert type(model).__name__ == "LlavaForConditionalGeneration", type(model)
processor = AutoProcessor.from_pretrained(llava)
ids = processor.tokenizer(["the cat sees"], return_tensors="pt")
print("llava", model.generate(**ids, max_new_tokens=3, do_sample=False).shape)
from PIL import Image
size = model.config.vision_config.image_size
image = Image.new("RGB", (size, size), (200, 30, 30))
inputs = processor(images=image, text="<image> the cat", return_tensors="pt")
print("llava+image", model.generate(**inputs, max_new_tokens=3, do_sample=False).shape)
for folder in (llama, babyllava):
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    ids = tok(["the cat sees a ball"], return_tensors="pt")
    print(type(model).__name__, model.generate(**ids, max_new_tokens=3, do_sample=False).shape)
"""
    )
    folders = [str(cli_outputs[k]) for k in ("llava", "llama", "babyllava")]
    done = subprocess.run([sys.executable, "-c", code, *folders], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if "torch.Size" in line]
    assert lines[0].startswith("llava torch.Size([1, ") and lines[1].startswith("llava+image torch.Size([1, ")
    assert lines[2].startswith("LlamaForCausalLM") and lines[3].startswith("BabyLlavaForConditionalGeneration")
