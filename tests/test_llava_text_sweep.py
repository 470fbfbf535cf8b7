"""``babymerge sweep`` over alpha for a babyllava and a plain ``LlamaForCausalLM`` (text tasks)."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import TASK, save_llama_like, weights, world_sweep


def test_sweep_merges_the_language_model_and_keeps_the_projector(make_checkpoint, world, tmp_path):
    from babymerge.sweep.merge import MergeSpec

    mm, init = make_checkpoint(31), make_checkpoint(30)
    llama = save_llama_like(mm, tmp_path / "llama", seed=32)
    sweep = world_sweep(llama, mm, world, tmp_path, base=init, alphas=[0.0, 0.5, 1.0], pairing=["final"])
    (pair,) = sweep.pairs()
    merged = sweep.merged_state(pair, MergeSpec(method="linear", alpha=0.3))
    m, t = weights(mm), weights(llama)
    assert set(merged) == set(m)
    for name, tensor in merged.items():
        if name.startswith(("model.multi_modal_projector.", "model.black_image_features")):
            assert torch.equal(tensor, m[name]), name
        else:
            text_name = name.replace("model.language_model.", "model.", 1)
            torch.testing.assert_close(tensor, 0.3 * t[text_name] + 0.7 * m[name], rtol=0, atol=1e-6, msg=name)
    deltas = sweep.merged_state(pair, MergeSpec(method="task_arithmetic", alpha=0.3))  # from babyllava's init
    b = weights(init)
    for name, tensor in deltas.items():
        if name.startswith(("model.multi_modal_projector.", "model.black_image_features")):
            assert torch.equal(tensor, m[name]), name
        else:
            text_name = name.replace("model.language_model.", "model.", 1)
            expected = b[name] + 0.3 * (t[text_name] - b[name]) + 0.7 * (m[name] - b[name])
            torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-6, msg=name)
    records = [r for r in sweep.run() if r.get("alpha") is not None and r["metric"] == "acc" and r["task"] == TASK]
    assert sorted(r["alpha"] for r in records) == [0.0, 0.5, 1.0]
    assert all(0.0 <= r["value"] <= 1.0 for r in records)

    from babymerge.sweep.stage import sweep_and_report

    sweep_and_report(sweep.config, tmp_path / "report", ["linear:0.5"], progress=False)
    (folder,) = (tmp_path / "report" / "merged").iterdir()
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["BabyLlavaForConditionalGeneration"]
    expected = sweep.merged_state(pair, MergeSpec(method="linear", alpha=0.5))
    written = weights(folder)
    assert set(written) == set(expected)
    for name, tensor in written.items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=1e-6, msg=name)


def test_a_text_lm_of_another_width_is_refused(make_checkpoint, world, tmp_path):
    from babymerge.errors import BabymergeError

    mm = make_checkpoint(33)
    llama = save_llama_like(mm, tmp_path / "llama", seed=35, hidden_size=48)
    with pytest.raises(BabymergeError, match=r"llama vs \S+: hidden_size vs text_config\.hidden_size: 48 vs 64"):
        world_sweep(llama, mm, world, tmp_path, pairing=["final"])  # refused before any model is loaded
