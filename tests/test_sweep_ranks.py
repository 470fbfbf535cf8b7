"""Points are shared among processes (RANK / WORLD_SIZE) writing to one results store."""

from __future__ import annotations

import subprocess

from helpers import CountingScorer, raw_keys, series, sweep_cmd

import babymerge.sweep.run as run
from babymerge.sweep.merge import MULTIMODAL, TEXT
from babymerge.sweep.run import Sweep, SweepConfig
from babymerge.sweep.store import ResultStore


def test_ranks_share_the_points(models, world, tmp_path, offline):
    out = tmp_path / "sweep"
    args = ("--methods", "linear,task_arithmetic", "--alphas", "0,1")
    procs = [
        subprocess.Popen(
            sweep_cmd(models, world, out, *args),
            env={**offline, "RANK": str(r), "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"},
            stderr=subprocess.PIPE,
        )
        for r in (0, 1)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]
    records = ResultStore(out / "results.jsonl").records()
    assert set(raw_keys(out / "results.jsonl").values()) == {1}
    assert len({(r["method"], r["alpha"]) for r in records}) == 4
    assert {r["rank"] for r in records} == {0, 1}
    assert (out / "sweep_table.md").read_text().count("| text=") == 4


def test_a_late_rank_scores_its_own_share_of_the_selection(models, tmp_path, monkeypatch):
    """A rank that starts after another has stored some selection scores still scores its own fixed share
    (every WORLD_SIZE-th checkpoint), not a share of what is left: else some checkpoints are never scored and
    the ranks wait for them forever."""
    text = series(tmp_path / "text", models[TEXT], [("1k", 1000), ("2k", 2000), ("3k", 3000), ("final", 4000)])
    fields = {"methods": ["linear"], "alphas": [0.5], "tasks": ["weights_sum"], "pairing": ["best"]}
    fields |= {"select_text_by": "weights_sum", "store": tmp_path / "results.jsonl"}
    config = SweepConfig(text=text, multimodal=models[MULTIMODAL], **fields)
    solo = Sweep(config.model_copy(update={"store": tmp_path / "solo.jsonl"}), CountingScorer, progress=False)
    first_score = [r for r in solo.run() if r.get("text") == "1k" and r["method"] == "checkpoint"]
    store = ResultStore(config.store)
    store.append(first_score)  # rank 0 got there first

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(run, "best_checkpoint", lambda store, keys, task, **_: list(keys.values())[-1])
    late = Sweep(config, CountingScorer, progress=False)
    late.pairs()
    assert {r["text"] for r in store.records() if r["rank"] == 1} == {"2k", "final"}
