"""In-memory merges are mergekit's own: the tensors equal mergekit-yaml's output for the same configuration;
the results store is safe for several processes and for a writer killed mid-line."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_sweep import env, raw_keys

from babymerge.sweep.merge import BASE, MULTIMODAL, TEXT, MergeSpec, load_state
from babymerge.sweep.store import ResultStore


@pytest.mark.parametrize(
    "spec",
    [
        MergeSpec(method="linear", alpha=0.3),
        MergeSpec(method="ties", alpha=0.8, parameters={"density": 0.5}),
        MergeSpec(method="slerp", alpha=0.5),
    ],
    ids=lambda s: s.method,
)
def test_in_memory_merge_equals_mergekit_yaml(models, tmp_path, spec):
    config = spec.mergekit_config(models[TEXT], models[MULTIMODAL], models[BASE])
    (tmp_path / "merge.yml").write_text(yaml.safe_dump(config))
    out = tmp_path / "merged"
    mergekit_yaml = str(Path(sys.executable).with_name("mergekit-yaml"))  # the running environment's, not PATH's
    cmd = [mergekit_yaml, str(tmp_path / "merge.yml"), str(out), "--trust-remote-code"]
    subprocess.run(cmd, check=True, env=env(), capture_output=True, cwd=tmp_path)
    written: dict[str, torch.Tensor] = {}
    for shard in out.glob("*.safetensors"):
        written.update(load_file(shard))
    in_memory = spec.merge({role: load_state(path) for role, path in models.items()})
    assert set(written) == set(in_memory) == set(load_state(models[TEXT]))
    for name, tensor in written.items():
        assert torch.equal(in_memory[name], tensor), name


def test_linear_alpha_is_the_text_share(models):
    states = {role: load_state(path) for role, path in models.items()}
    merged = MergeSpec(method="linear", alpha=0.3).merge(states)
    name = "model.language_model.layers.0.mlp.up_proj.weight"
    expected = 0.3 * states[TEXT][name] + 0.7 * states[MULTIMODAL][name]
    torch.testing.assert_close(merged[name], expected)


def _append_many(path: str, worker: int) -> None:
    store = ResultStore(path)
    for i in range(30):
        # keys 0..19 are shared by every worker; 20..29 are the worker's own
        key = i if i < 20 else 100 * (worker + 1) + i
        store.append([{"pair": "p", "method": "linear", "alpha": 0.5, "task": f"t{key}", "metric": "acc", "value": i}])


def test_store_is_safe_for_several_processes(tmp_path):
    path = tmp_path / "results.jsonl"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.starmap(_append_many, [(str(path), w) for w in range(4)])
    counts = raw_keys(path)
    assert len(counts) == 20 + 4 * 10
    assert set(counts.values()) == {1}


def test_store_skips_a_line_torn_by_a_kill(tmp_path):
    store = ResultStore(tmp_path / "results.jsonl")
    row = {"pair": "p", "method": "linear", "alpha": 0.5, "metric": "acc", "value": 1.0}
    store.append([{**row, "task": "a"}])
    with open(store.path, "a") as handle:
        handle.write('{"pair": "p", "method": "linear", "alpha": 0.5, "task": "b", "met')  # killed mid-line
    assert [r["task"] for r in store.records()] == ["a"]
    store.append([{**row, "task": "b"}, {**row, "task": "a"}])
    assert [r["task"] for r in store.records()] == ["a", "b"]


def test_materialize_writes_chosen_merges_with_cards(models, world, tmp_path, monkeypatch):
    """``--materialize``: full mergekit folders equal to the in-memory merge, cards with the sweep's scores,
    ``best`` resolved from the store, nothing left half-written when the merge fails."""
    import mergekit.merge

    from babymerge.sweep.run import SweepConfig
    from babymerge.sweep.stage import sweep_and_report

    config = SweepConfig(
        text=models[TEXT],
        multimodal=models[MULTIMODAL],
        base=models[BASE],
        methods=["linear"],
        alphas=[0.2, 0.7],
        tasks=["babylm_blimp_fast"],
        store=tmp_path / "out" / "results.jsonl",
        data_dir=world / "evaluation_data",
    )
    outcome = sweep_and_report(config, tmp_path / "out", ["linear:0.2", "best"], progress=False)
    scores = {r["alpha"]: r["value"] for r in outcome.records if r["metric"] == "acc" and r.get("alpha") is not None}
    best = max(scores, key=lambda a: (scores[a], -abs(a - 0.5)))
    folders = sorted((tmp_path / "out" / "merged").iterdir())
    assert [f.name.split("_")[1] for f in folders] == sorted({"alpha0.2", f"alpha{best:g}"})
    states = {role: load_state(path) for role, path in models.items()}
    for folder in folders:
        alpha = float(folder.name.split("_")[1].removeprefix("alpha"))
        expected = MergeSpec(method="linear", alpha=alpha).merge(states)
        written = load_state(folder)
        assert set(written) == set(expected) and all(torch.equal(written[k], expected[k]) for k in expected)
        card = (folder / "README.md").read_text()
        assert f"| babylm_blimp_fast | acc | {100 * scores[alpha]:.2f} |" in card
        assert (folder / "tokenizer.json").is_file()

    def broken(merge_config, out_path, *args, **kwargs):  # dies halfway through writing
        Path(out_path).mkdir(parents=True)
        (Path(out_path) / "model-00001-of-00002.safetensors").write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(mergekit.merge, "run_merge", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        sweep_and_report(config, tmp_path / "out", ["linear:0.45"], progress=False)
    assert sorted((tmp_path / "out" / "merged").iterdir()) == folders  # no partial folder left behind
