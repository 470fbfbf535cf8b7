"""What a stored sweep result depends on: a result is reused only for the same weights, parameters, seed,
limit and data; a resume scores only what is missing; bad checkpoints are refused in one line; seeded
randomised methods repeat exactly, and ``--materialize`` writes the merge that was scored; one sweep at a time
per store.

The scorer here counts its calls and scores the weights themselves (the sum of every floating tensor), so a
result changes whenever the merged weights do; lm-eval scoring is tested in test_sweep.py.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct

import pytest
import torch
from helpers import CountingScorer
from safetensors.torch import load_file, save_file

from babymerge.cli import main
from babymerge.sweep.merge import BASE, MULTIMODAL, TEXT, MergeSpec, load_state
from babymerge.sweep.run import Sweep, SweepConfig
from babymerge.sweep.store import ResultStore

TASK = "weights_sum"


def sweep(models, store, **fields) -> Sweep:
    fields = {"methods": ["linear"], "alphas": [0.25, 0.75], "tasks": [TASK], "store": store} | fields
    config = SweepConfig(text=models[TEXT], multimodal=models[MULTIMODAL], base=models[BASE], **fields)
    return Sweep(config, scorer_factory=CountingScorer, progress=False)


def values(records) -> dict:
    return {(r["method"], r["alpha"]): r["value"] for r in records}


def copy_model(source, target):
    shutil.copytree(source, target, dirs_exist_ok=True)
    return target


def test_resume_scores_only_missing_points(models, tmp_path):
    store = tmp_path / "results.jsonl"
    first = sweep(models, store, alphas=[0.0, 0.5])
    first.run()
    assert len(first.scorer.calls) == 2
    again = sweep(models, store, alphas=[0.0, 0.25, 0.5, 1.0])
    records = again.run()
    assert len(again.scorer.calls) == 2  # only 0.25 and 1.0; 0.0 and 0.5 come from the store
    assert again.recomputed == 0
    assert sorted(r["alpha"] for r in records) == [0.0, 0.25, 0.5, 1.0]


@pytest.mark.parametrize("change", ["param", "same_name_other_weights", "limit", "data", "seed"])
def test_changed_inputs_are_recomputed_and_counted(models, make_checkpoint, tmp_path, change, caplog):
    text = copy_model(models[TEXT], tmp_path / "text")
    data = tmp_path / "data"
    data.mkdir()
    (data / "items.jsonl").write_text('{"a": 1}\n')
    fields = {"methods": ["ties"], "method_parameters": {"ties": {"density": 0.3}}, "data_dir": data}
    if change == "seed":
        fields |= {"methods": ["dare_ties"], "method_parameters": {"dare_ties": {"density": 0.5}}}
    store = tmp_path / "results.jsonl"
    models = {**models, TEXT: text}
    before = values(sweep(models, store, **fields).run())

    unchanged = sweep(models, store, **fields)
    assert values(unchanged.run()) == before and unchanged.scorer.calls == []

    if change == "param":
        fields["method_parameters"] = {"ties": {"density": 0.1}}
    elif change == "same_name_other_weights":
        copy_model(make_checkpoint(7), text)
    elif change == "limit":
        fields["limit"] = 5
    elif change == "data":
        (data / "items.jsonl").write_text('{"a": 2}\n')
    else:
        fields["seed"] = 1
    with caplog.at_level(logging.WARNING, logger="babymerge.sweep"):
        changed = sweep(models, store, **fields)
        after = values(changed.run())
    assert len(changed.scorer.calls) == 2 and changed.recomputed == 2
    named = {"param": "--param", "same_name_other_weights": "text-only checkpoint weights", "limit": "--limit"}
    named |= {"data": "data", "seed": "--seed"}  # this scorer tells no task's files: the whole data dir counts
    assert f"recomputing 2 results stored for other inputs: {named[change]} changed (2)" in caplog.text
    if change in ("param", "same_name_other_weights", "seed"):  # the weights differ, so must the scores
        assert all(after[k] != before[k] for k in before)


def test_store_of_the_previous_format_is_recomputed_with_a_notice(models, tmp_path, caplog):
    store = tmp_path / "results.jsonl"
    old = {"pair": "text=model+multimodal=model", "method": "linear", "alpha": 0.25, "task": TASK}
    store.write_text(json.dumps(old | {"metric": "acc", "value": 123.0}) + "\n")
    with caplog.at_level(logging.WARNING, logger="babymerge.sweep"):
        s = sweep(models, store)
        records = s.run()
    assert len(s.scorer.calls) == 2 and s.recomputed == 1
    assert "the stored results predate input fingerprints (1)" in caplog.text
    assert 123.0 not in values(records).values()
    assert len(ResultStore(store).records()) == 3  # the old line is kept, not reused


def _first_float_tensor(folder):
    state = load_file(folder / "model.safetensors")
    return state, next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)


def _cli(models, out, *extra):
    argv = ["sweep", "--text", str(models[TEXT]), "--multimodal", str(models[MULTIMODAL]), "--methods", "linear"]
    return main([*argv, "--alphas", "0.5", "--limit", "4", "--out", str(out), "--no-progress", *extra])


def test_nan_checkpoint_is_refused_naming_the_tensor(models, tmp_path, capsys):
    bad = copy_model(models[TEXT], tmp_path / "nan_model")
    state, name = _first_float_tensor(bad)
    state[name] = state[name].clone()
    state[name].view(-1)[3] = float("nan")
    save_file(state, bad / "model.safetensors", metadata={"format": "pt"})
    assert _cli({**models, TEXT: bad}, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and name in err[0] and "NaN" in err[0] and str(bad) in err[0]
    assert not (tmp_path / "out" / "results.jsonl").exists()  # no 0.00 stored


def test_truncated_checkpoint_is_one_line(models, tmp_path, capsys):
    bad = copy_model(models[MULTIMODAL], tmp_path / "cut_model")
    weights = bad / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert _cli({**models, MULTIMODAL: bad}, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "truncated" in err[0] and str(weights) in err[0]
    (length,) = struct.unpack("<Q", weights.read_bytes()[:8])  # the header survived: the size check caught it
    assert length < weights.stat().st_size


def test_second_sweep_on_one_store_is_refused(models, world, tmp_path, capsys):
    store = ResultStore(tmp_path / "out" / "results.jsonl")
    data = ("--data-dir", str(world / "evaluation_data"))
    with store.sole_writer():
        assert _cli(models, tmp_path / "out", *data) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "another sweep is writing" in err[0] and "results.jsonl" in err[0]
    assert not store.path.exists()
    assert _cli(models, tmp_path / "out", *data) == 0  # the lock goes with its holder
    assert len(ResultStore(store.path).records()) > 0


def test_seeded_dare_ties_repeats_and_materializes_the_scored_merge(models, tmp_path):
    from babymerge.sweep.stage import materialize_merges

    fields = {"methods": ["dare_ties"], "method_parameters": {"dare_ties": {"density": 0.5}}, "alphas": [0.3]}
    one = sweep(models, tmp_path / "a.jsonl", seed=7, **fields)
    two = sweep(models, tmp_path / "b.jsonl", seed=7, **fields)
    other = sweep(models, tmp_path / "c.jsonl", seed=8, **fields)
    first, second, third = (values(s.run()) for s in (one, two, other))
    assert first == second and first != third
    assert [r["seed"] for r in ResultStore(tmp_path / "a.jsonl").records()] == [7]

    states = {role: load_state(path) for role, path in models.items()}
    spec = MergeSpec(method="dare_ties", alpha=0.3, parameters={"density": 0.5}, seed=7)
    scored = spec.merge(states)
    torch.manual_seed(123)  # the global generator's state must not matter
    assert all(torch.equal(scored[k], v) for k, v in spec.merge(states).items())
    (folder,) = materialize_merges(one, one.store.records(), ["dare_ties:0.3"], tmp_path / "merged")
    written = load_state(folder)
    assert set(written) == set(scored) and all(torch.equal(written[k], scored[k]) for k in scored)
    assert "seed 7" in (folder / "README.md").read_text()


def test_feature_file_fingerprint_is_its_content_not_its_byte_order(tmp_path):
    """Two extractions of one feature set differ byte-wise (safetensors writes metadata in hash-map order);
    the sweep's key must not, or every re-extraction recomputes the whole store."""
    from babymerge.sweep.fingerprint import features_fingerprint

    tensors = {"features": torch.arange(6.0).reshape(3, 1, 2), "black": torch.zeros(1, 2)}
    meta = {f"key{i}": str(i) for i in range(8)}
    first, second, other = tmp_path / "a.safetensors", tmp_path / "b.safetensors", tmp_path / "c.safetensors"
    save_file(tensors, first, metadata=meta)
    header = first.read_bytes()
    length = struct.unpack("<Q", header[:8])[0]
    parsed = json.loads(header[8 : 8 + length])
    reordered = {k: parsed[k] for k in reversed(list(parsed))}
    reordered["__metadata__"] = dict(reversed(list(parsed["__metadata__"].items())))
    text = json.dumps(reordered, separators=(",", ":")).encode()
    assert len(text) <= length
    text += b" " * (length - len(text))  # same header size, so the data offsets still hold
    second.write_bytes(header[:8] + text + header[8 + length :])
    assert first.read_bytes() != second.read_bytes()
    assert features_fingerprint(first) == features_fingerprint(second)
    save_file({**tensors, "features": tensors["features"] + 1}, other, metadata=meta)
    assert features_fingerprint(other) != features_fingerprint(first)
    assert features_fingerprint(tmp_path / "none.safetensors") == "missing"
