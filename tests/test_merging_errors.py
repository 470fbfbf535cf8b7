"""Bad merge input: one line naming the model and tensor or field, a failure, and no output left behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import run_merge as run
from helpers import weights
from safetensors.torch import save_file

from babymerge.sweep.merge import MULTIMODAL, TEXT


def recipe(*models: Path, method: str = "linear", base: Path | None = None, params: dict | None = None) -> dict:
    out = {
        "merge_method": method,
        "models": [{"model": str(m), "parameters": params if params is not None else {"weight": 0.5}} for m in models],
    }
    if base is not None:
        out["base_model"] = str(base)
    return out


@pytest.fixture(scope="module")
def good(models):
    """The text-only and the multimodal parent of conftest's ``models``."""
    return models[TEXT], models[MULTIMODAL]


def variant(source: Path, tmp: Path, name: str) -> Path:
    target = tmp / name
    shutil.copytree(source, target)
    return target


def fails(recipe_: dict, tmp: Path, *fragments: str) -> str:
    """Run, expect a one-line BabymergeError containing ``fragments``, and no output or staging folder."""
    from babymerge.errors import BabymergeError

    out = tmp / "merged"
    with pytest.raises(BabymergeError) as info:
        run(recipe_, out)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert not out.exists()
    assert not [p for p in tmp.iterdir() if p.name.startswith(".merged.")], "staging folder left behind"
    return message


def test_mismatched_architecture(good, tmp_path):
    other = variant(good[1], tmp_path, "other")
    config = json.loads((other / "config.json").read_text())
    config["architectures"] = ["LlamaForCausalLM"]
    config["model_type"] = "llama"
    (other / "config.json").write_text(json.dumps(config))
    fails(recipe(good[0], other), tmp_path, str(other), "LlamaForCausalLM")


def test_mismatched_shapes(good, make_checkpoint, tmp_path):
    wider = make_checkpoint(23, vision_feature_dim=16)
    message = fails(recipe(good[0], wider), tmp_path, "shape")
    assert "model.black_image_features" in message or "linear_1.weight" in message
    assert str(wider) in message or str(good[0]) in message


@pytest.mark.parametrize("method", ["task_arithmetic", "ties", "dare_ties"])
def test_missing_base_model(good, tmp_path, method):
    fails(recipe(*good, method=method, params={"weight": 1.0}), tmp_path, "base_model", method)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_weights(good, tmp_path, bad):
    broken = variant(good[1], tmp_path, "broken")
    tensors = weights(broken)
    tensors["model.language_model.layers.1.mlp.up_proj.weight"][3, 5] = bad
    save_file(tensors, str(broken / "model.safetensors"))
    fails(recipe(good[0], broken), tmp_path, str(broken), "model.language_model.layers.1.mlp.up_proj.weight", "NaN")


def test_truncated_safetensors(good, tmp_path):
    broken = variant(good[1], tmp_path, "broken")
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) - 1000])
    fails(recipe(good[0], broken), tmp_path, str(broken / "model.safetensors"), "truncated")


def test_unreadable_safetensors(good, tmp_path):
    broken = variant(good[1], tmp_path, "broken")
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    fails(recipe(good[0], broken), tmp_path, str(broken / "model.safetensors"))


def test_unknown_method(good, tmp_path):
    fails(recipe(*good, method="lienar"), tmp_path, "merge_method", "lienar")


def test_unknown_parameter(good, tmp_path):
    fails(recipe(*good, params={"wieght": 0.5}), tmp_path, "models[0].parameters.wieght", "linear")


def test_missing_required_parameter(good, tmp_path):
    fails(recipe(*good, params={}), tmp_path, "weight")


def test_uncovered_tensor(good, tmp_path):
    extra = variant(good[1], tmp_path, "extra")
    tensors = weights(extra)
    tensors["model.extra_head.weight"] = torch.zeros(2, 2)
    save_file(tensors, str(extra / "model.safetensors"))
    fails(recipe(good[0], extra), tmp_path, str(extra), "model.extra_head.weight", "dropped")


def test_module_left_out(good, tmp_path):
    partial = {
        "merge_method": "linear",
        "modules": {
            name: {"models": [{"model": str(m), "parameters": {"weight": 0.5}} for m in good]}
            for name in ("text_decoder", "multi_modal_projector")
        },
    }
    fails(partial, tmp_path, "modules", "black_image")


def test_existing_output_is_left_alone(good, tmp_path):
    from babymerge.errors import BabymergeError

    out = tmp_path / "merged"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(BabymergeError, match="output folder exists"):
        run(recipe(*good), out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
