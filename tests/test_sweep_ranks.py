"""Points are shared among processes (RANK / WORLD_SIZE) writing to one results store."""

from __future__ import annotations

import subprocess

from helpers import raw_keys, sweep_cmd

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
