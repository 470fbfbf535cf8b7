"""No-image controls in the sweep (issue 22): the parents (alpha 0 and 1) score each image task's control, its
per-item scores are stored like any task's, and the sweep's table and comparisons (md and csv) show the image
task minus its control with the 95% paired interval and a verdict in words that follows the interval."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from test_intervals import point
from test_no_image_control import TASK, captions, features_for  # noqa: F401  (captions: a fixture)

from babymerge.evaluation.controls import CHANGED, SAME
from babymerge.evaluation.uncertainty import compare
from babymerge.sweep.comparisons import CONTROL, comparison_rows
from babymerge.sweep.items import FIELD, decode
from babymerge.sweep.report import markdown_table, write_report
from babymerge.sweep.store import ResultStore

CONTROL_TASK = TASK + "_no_image"
EFFECT = f"{TASK}_image_minus_no_image"


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def words_for(low: float, high: float) -> str:
    return SAME if low <= 0 <= high else CHANGED


def test_the_sweep_scores_the_control_at_the_parents_and_reports_image_minus_no_image(captions, models, tmp_path):  # noqa: F811
    from babymerge.sweep.merge import BASE, MULTIMODAL, TEXT
    from babymerge.sweep.run import Sweep, SweepConfig

    root, images = captions
    features = tmp_path / "features.safetensors"
    features_for(images, 1).save(features)
    out = tmp_path / "sweep"
    config = SweepConfig(
        text=models[TEXT],
        multimodal=models[MULTIMODAL],
        base=models[BASE],
        methods=["linear"],
        alphas=[0, 0.5, 1],
        tasks=[TASK],
        store=out / "results.jsonl",
        data_dir=root,
        features=features,
        batch_size=4,
    )
    records = Sweep(config, progress=False).run()
    write_report(records, out)

    acc = {(r["task"], r["alpha"]): r for r in records if r["metric"] == "acc"}
    assert sorted(a for t, a in acc if t == CONTROL_TASK) == [0.0, 1.0]  # the parents only, not the merge
    assert all(FIELD in r and r["items"] == len(images) for r in acc.values())

    rows = {float(r["alpha"]): r for r in read_csv(out / "sweep_table.csv")}
    compared = {float(r["alpha"]): r for r in read_csv(out / "comparisons.csv") if r["against"] == CONTROL}
    assert set(compared) == {0.0, 1.0} and rows[0.5][EFFECT] == ""
    table = (out / "sweep_table.md").read_text()
    assert "Caption matching: image minus no image (x100)" in table and "Caption matching, no image (acc x100)" in table
    for alpha in (0.0, 1.0):
        with_image, without = (decode(acc[(t, alpha)][FIELD]) for t in (TASK, CONTROL_TASK))
        difference = 100 * (np.mean(with_image) - np.mean(without))  # independently, from the stored items
        paired = compare(with_image, without)
        row, against = rows[alpha], compared[alpha]
        for found in (row[EFFECT], against["difference"]):
            assert float(found) == pytest.approx(difference)
        interval = (float(row[f"{EFFECT}_low"]), float(row[f"{EFFECT}_high"]))
        assert interval == pytest.approx((100 * paired.low, 100 * paired.high))
        assert (float(against["low"]), float(against["high"])) == pytest.approx(interval)
        assert row[f"{TASK}_image_verdict"] == against["verdict"] == words_for(*interval)
        assert f"{difference:+.2f} [{interval[0]:+.2f}, {interval[1]:+.2f}] {words_for(*interval)}" in table

    lines = (out / "results.jsonl").read_text()
    assert Sweep(config, progress=False).run() == records  # a rerun finds the controls stored: nothing rescored
    assert (out / "results.jsonl").read_text() == lines


def image_point(alpha: float, with_image: list, without: list) -> list[dict]:
    """An image task's stored result at ``alpha`` and its control's, on the same generated items."""
    return [{**point(alpha, items), "task": task} for task, items in ((TASK, with_image), (CONTROL_TASK, without))]


def test_the_verdict_in_words_follows_the_paired_interval(tmp_path):
    rng = np.random.default_rng(0)
    without = [float(v) for v in rng.random(200) < 0.5]
    helps = [1.0 if rng.random() < 0.6 else v for v in without]  # the image turns many wrong choices right
    hurts = [0.0 if rng.random() < 0.6 else v for v in without]
    store = ResultStore(tmp_path / "results.jsonl")
    store.append_scored(image_point(0.0, helps, without) + image_point(1.0, without, without))
    store.append_scored(image_point(0.5, hurts, hurts) + [{**point(0.3, hurts), "task": TASK}])
    records = store.records(with_items=True)

    rows = {r["alpha"]: r for r in comparison_rows(records) if r["against"] == CONTROL}
    assert set(rows) == {0.0, 0.5, 1.0}  # every point holding both; none at 0.3 (no control scored there)
    assert rows[0.0]["low"] > 0 and rows[0.0]["verdict"] == CHANGED
    assert rows[1.0]["low"] == rows[1.0]["high"] == 0.0 and rows[1.0]["verdict"] == SAME
    assert all(r["verdict"] == words_for(r["low"], r["high"]) for r in rows.values())
    hurt = image_point(0.0, hurts, without)
    store = ResultStore(tmp_path / "hurts.jsonl")
    store.append_scored(hurt)
    [row] = [r for r in comparison_rows(store.records(with_items=True)) if r["against"] == CONTROL]
    assert row["high"] < 0 and row["verdict"] == CHANGED  # behind its control: the image changed choices too

    table = markdown_table(records)
    assert f"] {CHANGED} |" in table and f"] {SAME} |" in table
    assert "controls are scored at alpha 0 and 1 (the parents)" in table
