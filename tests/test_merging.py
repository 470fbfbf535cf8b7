"""mergekit's Python API on babyllava: endpoints, determinism, the guard, the reference Llava layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from helpers import RECIPES, weights
from helpers import run_merge as run
from safetensors.torch import save_file

from babymerge.sweep.merge import BASE, MULTIMODAL, TEXT


def linear(text: Path, mm: Path, alpha: float) -> dict:
    return {
        "merge_method": "linear",
        "dtype": "float32",
        "parameters": {"normalize": False},
        "models": [
            {"model": str(text), "parameters": {"weight": alpha}},
            {"model": str(mm), "parameters": {"weight": 1 - alpha}},
        ],
    }


@pytest.fixture(scope="module")
def pair(models):
    """The text-only and the multimodal parent of conftest's ``models``."""
    return models[TEXT], models[MULTIMODAL]


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_alpha_endpoints_are_bitwise_parents(pair, tmp_path, alpha):
    text, mm = pair
    run(linear(text, mm, alpha), tmp_path / "out")
    expected = weights(text if alpha == 1.0 else mm)
    got = weights(tmp_path / "out")
    assert set(got) == set(expected)
    for name in expected:
        assert torch.equal(got[name], expected[name]), name


def test_repeated_merges_are_bitwise_identical(pair, tmp_path):
    text, mm = pair
    run(linear(text, mm, 0.3), tmp_path / "a")
    run(linear(text, mm, 0.3), tmp_path / "b")
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_repeated_dare_ties_with_seed_is_identical(models, pair, tmp_path):
    init = models[BASE]
    text, mm = pair
    recipe = {
        "merge_method": "dare_ties",
        "base_model": str(init),
        "models": [{"model": str(m), "parameters": {"weight": 1.0, "density": 0.5}} for m in (text, mm)],
    }
    run(recipe, tmp_path / "a", random_seed=3)
    run(recipe, tmp_path / "b", random_seed=3)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_guard_names_a_tensor_that_did_not_reach_the_output(pair, tmp_path):
    from babymerge.merging import MergeInputError, check_tensors_reach_output

    text, mm = pair
    run(linear(text, mm, 0.5), tmp_path / "out")
    check_tensors_reach_output([text, mm], tmp_path / "out")
    tensors = weights(tmp_path / "out")
    del tensors["model.black_image_features"]
    save_file(tensors, str(tmp_path / "out" / "model.safetensors"))
    with pytest.raises(MergeInputError, match=r"model\.black_image_features did not reach"):
        check_tensors_reach_output([text, mm], tmp_path / "out")


def test_register_is_idempotent_and_finds_babyllava():
    from mergekit.architecture.json_definitions import NAME_TO_ARCH
    from mergekit.merge_methods import registry

    from babymerge.merging import register

    register()
    register()
    assert len(NAME_TO_ARCH["BabyLlavaForConditionalGeneration"]) == 1
    assert len(NAME_TO_ARCH["LlavaForConditionalGeneration"]) == 1
    assert [m.spec.name for m in registry.registered_methods()].count("regmean") == 1


def reference_llava(folder: Path, seed: int) -> Path:
    """A tiny checkpoint in the authors' Llava layout: Llama LM, 2-layer projector, DINOv2 tower (legacy keys)."""
    from transformers import Dinov2Config, Dinov2Model, LlamaConfig, LlamaForCausalLM, LlavaConfig

    torch.manual_seed(seed)
    text_cfg = LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=64
    )
    vision_cfg = Dinov2Config(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, image_size=28, patch_size=14
    )
    tensors = {f"language_model.{k}": v for k, v in LlamaForCausalLM(text_cfg).state_dict().items()}
    tensors |= {f"vision_tower.{k}": v for k, v in Dinov2Model(vision_cfg).state_dict().items()}
    proj = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 32))
    tensors |= {
        f"multi_modal_projector.linear_{1 if k[0] == '0' else 2}.{k[2:]}": v for k, v in proj.state_dict().items()
    }
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"))
    config = LlavaConfig(vision_config=vision_cfg, text_config=text_cfg, image_token_index=3, image_seq_length=1)
    config.architectures = ["LlavaForConditionalGeneration"]
    config.save_pretrained(folder)
    return folder


def test_reference_llava_layout_merges_every_tensor(tmp_path):
    a, b = reference_llava(tmp_path / "a", 1), reference_llava(tmp_path / "b", 2)
    run(linear(a, b, 0.3), tmp_path / "out")
    wa, wb, out = weights(a), weights(b), weights(tmp_path / "out")
    assert set(out) == set(wa)
    assert any(k.startswith("vision_tower.encoder.layer.1.") for k in out)
    for name, tensor in out.items():
        torch.testing.assert_close(tensor, 0.3 * wa[name] + 0.7 * wb[name], rtol=0, atol=1e-6, msg=name)


def test_card_step_works_offline_with_relative_paths(pair, tmp_path, monkeypatch):
    """mergekit's card step asks the Hub about relative paths; the guarded merge keeps local folders local."""
    text, mm = pair
    monkeypatch.chdir(text.parent.parent)
    rel_text = Path(text.parent.name) / text.name
    rel_mm = Path("..") / mm.parent.parent.name / mm.parent.name / mm.name
    run(linear(rel_text, rel_mm, 0.5), tmp_path / "out")
    assert "linear" in yaml.safe_load((tmp_path / "out" / "mergekit_config.yml").read_text())["merge_method"]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "babyllava"


def test_babymerge_merge_fills_placeholders(pair, tmp_path):
    from babymerge.cli import main

    text, mm = pair
    recipe = str(RECIPES / "linear_alpha0.8.yml")
    args = [
        "merge",
        recipe,
        str(tmp_path / "out"),
        "--model",
        f"text_model={text}",
        "--model",
        f"multimodal_model={mm}",
    ]
    assert main(args) == 0
    wt, wm, out = weights(text), weights(mm), weights(tmp_path / "out")
    for name in wt:
        assert (out[name] - (0.8 * wt[name] + 0.2 * wm[name])).abs().max() <= 1e-6, name
    assert str(text.resolve()) in (tmp_path / "out" / "mergekit_config.yml").read_text()
    # A placeholder left without a path, and an existing output, are one-line errors (exit 2).
    assert main(["merge", recipe, str(tmp_path / "o2"), "--model", f"text_model={text}"]) == 2
    assert main(args) == 2
