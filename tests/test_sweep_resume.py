"""A killed sweep resumes without recomputing or losing a result; ranks share the points of one store."""

from __future__ import annotations

import signal
import subprocess
import time

from helpers import TASK, raw_keys, sweep_cmd

from babymerge.sweep.store import ResultStore, record_key

ALPHAS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
ARGS = ("--methods", "linear", "--alphas", ",".join(map(str, ALPHAS)))


def test_killed_sweep_resumes_with_every_result_once(models, world, tmp_path, offline):
    out = tmp_path / "sweep"
    store = out / "results.jsonl"
    process = subprocess.Popen(sweep_cmd(models, world, out, *ARGS), env=offline, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 150  # start-up alone can take a minute on a loaded 2-core machine
    while not (store.exists() and store.read_text().count("\n") >= 1):
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the sweep wrote no result"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = {record_key(r): r for r in ResultStore(store).records()}
    points = {key.alpha for key, _ in before}  # a point stores several metrics (acc, tie counts)
    assert 1 <= len(points) < len(ALPHAS), "the sweep had to be killed part-way"

    subprocess.run(sweep_cmd(models, world, out, *ARGS), env=offline, check=True, capture_output=True)
    counts = raw_keys(store)
    assert set(counts.values()) == {1}
    after = {record_key(r): r for r in ResultStore(store).records()}
    assert {k.alpha for k, _ in after if k.task == TASK} == set(ALPHAS)
    for key, record in before.items():
        assert after[key] == record  # kept, not recomputed
    # every score keeps its per-document items, once each, the killed run's too
    items = ResultStore(store).items_store
    assert set(raw_keys(items.path).values()) == {1}
    assert {record_key(r) for r in items.records()} == {k for k in after if k[1] == "acc"}
    table = (out / "sweep_table.md").read_text()
    assert table.count("| linear |") == len(ALPHAS)
    assert (out / "plots" / f"{TASK}_vs_alpha.png").stat().st_size > 1000
