"""Per-item scores stored with a sweep's results; intervals and paired verdicts in its tables, rebuilt from the
store alone; old stores without items read without intervals (issue 22)."""

from __future__ import annotations

import csv
import subprocess

import numpy as np
import pytest
from helpers import TASK, sweep_cmd

from babymerge.evaluation.uncertainty import ItemScores, compare, interval
from babymerge.sweep.comparisons import comparison_rows
from babymerge.sweep.equal_words import equal_word_rows
from babymerge.sweep.equal_words import markdown as equal_words_markdown
from babymerge.sweep.items import FIELD, decode, encode
from babymerge.sweep.report import markdown_table, write_report
from babymerge.sweep.store import PointKey, ResultStore

REPORT = ["sweep_table.md", "sweep_table.csv", "comparisons.md", "comparisons.csv"]


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_sweep_tables_carry_intervals_computed_from_the_stored_items(models, world, tmp_path, offline):
    out = tmp_path / "sweep"
    args = ("--methods", "linear,task_arithmetic", "--alphas", "0,0.5,1")
    subprocess.run(sweep_cmd(models, world, out, *args), env=offline, check=True, capture_output=True)
    store = ResultStore(out / "results.jsonl")
    assert store.items_store.path.name == "results.items.jsonl"
    records = [r for r in store.records(with_items=True) if r["task"] == TASK and r["metric"] == "acc"]
    assert len(records) == 6 and all(FIELD in r for r in records)
    assert not any(FIELD in r for r in store.records())  # the results file itself stays small

    rows = {(r["method"], float(r["alpha"])): r for r in read_csv(out / "sweep_table.csv")}
    table = (out / "sweep_table.md").read_text()
    for record in records:
        items = decode(record[FIELD])
        assert len(items) == record["items"]  # one item per document scored
        assert ItemScores.from_items(items).score() == pytest.approx(record["value"], abs=1e-12)
        expected = interval(items)  # independently, on the stored items
        row = rows[(record["method"], float(record["alpha"]))]
        assert float(row[f"{TASK}_low"]) == pytest.approx(100 * expected.low)
        assert float(row[f"{TASK}_high"]) == pytest.approx(100 * expected.high)
        assert f"{100 * record['value']:.2f} [{100 * expected.low:.2f}, {100 * expected.high:.2f}]" in table
    assert "95% interval over the task's items" in table

    # every merge against each parent, and each method's best alpha against its ends, with verdicts
    compared = read_csv(out / "comparisons.csv")
    merges = {(r["method"], float(r["alpha"])) for r in compared if r["against"].endswith("parent")}
    assert merges == {("linear", 0.5), ("task_arithmetic", 0.0), ("task_arithmetic", 0.5), ("task_arithmetic", 1.0)}
    by_point = {(r["method"], float(r["alpha"])): r for r in records}
    assert {r["against"] for r in compared} >= {"text-only parent", "multimodal parent"}
    for r in compared:  # each row against an independent paired comparison of the stored items
        against = {"text-only parent": ("linear", 1.0), "multimodal parent": ("linear", 0.0)}.get(r["against"])
        if against is None:  # "alpha 0 (best alpha 0.5)": the method's own end
            against = (r["method"], float(r["against"].split()[1]))
        a, b = by_point[(r["method"], float(r["alpha"]))], by_point[against]
        expected = compare(decode(a[FIELD]), decode(b[FIELD]))
        assert float(r["difference"]) == pytest.approx(100 * (a["value"] - b["value"]))
        assert (float(r["low"]), float(r["high"])) == pytest.approx((100 * expected.low, 100 * expected.high))
        assert r["verdict"] == expected.verdict

    # the same tables from the store alone, in this process: no rescoring, identical files
    rebuilt = tmp_path / "rebuilt"
    write_report(ResultStore(out / "results.jsonl").records(with_items=True), rebuilt)
    for name in REPORT:
        assert (rebuilt / name).read_text() == (out / name).read_text(), name


def point(alpha: float, items: list, words: int | None = None, method: str = "linear") -> dict:
    """A stored result of a generated sweep: BLiMP-like ``(uid, correct)`` items and their score."""
    key = PointKey.make("text=a+multimodal=b", method, alpha, TASK, "x")
    fields = {"text": "a", "multimodal": "b", "text_words": words, "multimodal_words": words, "limit": None}
    value = ItemScores.from_items(items).score()
    return {**fields, **key.fields(), "metric": "acc", "value": value, "items": len(items), FIELD: encode(items)}


def generated_items(seed: int, p: float, n: int = 400) -> list:
    rng = np.random.default_rng(seed)
    return [(f"uid{i % 4}", float(rng.random() < p)) for i in range(n)]


def test_verdicts_on_a_generated_store_where_one_model_is_clearly_better(tmp_path):
    worse = generated_items(0, 0.5)
    better = [(uid, 1.0 if np.random.default_rng(i).random() < 0.6 else v) for i, (uid, v) in enumerate(worse)]
    store = ResultStore(tmp_path / "results.jsonl")
    store.append_scored([point(0.0, worse), point(0.5, better), point(1.0, worse)])
    records = store.records(with_items=True)

    verdicts = {(r["alpha"], r["against"]): r["verdict"] for r in comparison_rows(records)}
    assert verdicts == {
        (0.5, "text-only parent"): "ahead",
        (0.5, "multimodal parent"): "ahead",
        (0.5, "alpha 0 (best alpha 0.5)"): "ahead",
        (0.5, "alpha 1 (best alpha 0.5)"): "ahead",
    }
    # the parents hold identical items: a merge equal to them is not distinguishable from either
    store = ResultStore(tmp_path / "same.jsonl")
    store.append_scored([point(0.0, worse), point(0.5, worse), point(1.0, worse)])
    same = comparison_rows(store.records(with_items=True))
    assert {r["verdict"] for r in same} == {"not distinguishable"}
    assert all(r["low"] == r["high"] == 0.0 for r in same)


def test_equal_word_verdicts_count_only_significant_milestones(tmp_path):
    worse, same = generated_items(1, 0.5), generated_items(2, 0.6)
    better = [(uid, 1.0 if np.random.default_rng(i).random() < 0.6 else v) for i, (uid, v) in enumerate(worse)]
    flip = next(i for i, (_, v) in enumerate(same) if v == 0.0)
    nudged = [(uid, 1.0 if i == flip else v) for i, (uid, v) in enumerate(same)]  # one item ahead, not at 95%
    store = ResultStore(tmp_path / "results.jsonl")
    records = [point(1.0, better, 1_000_000), point(0.0, worse, 1_000_000)]
    records += [point(1.0, nudged, 2_000_000), point(0.0, same, 2_000_000)]
    store.append_scored([{**r, "pair": f"text={r['text_words']}+multimodal={r['text_words']}"} for r in records])
    stored = store.records(with_items=True)

    _, rows = equal_word_rows(stored)
    assert [r["verdict"] for r in rows] == ["ahead", "not distinguishable"]
    expected = compare(better, worse)
    assert (rows[0]["difference_low"], rows[0]["difference_high"]) == pytest.approx(
        (100 * expected.low, 100 * expected.high)
    )
    text = equal_words_markdown(stored)
    assert rows[1]["difference"] > 0  # ahead on its face, counted apart from the significant lead
    assert "text-only ahead at 2, multimodal ahead at 0, equal at 0 of 2 milestones" in text
    assert "at 95% (paired, 2 milestones with items): text-only ahead at 1, multimodal ahead at 0" in text
    for found, words in ((expected, "ahead"), (compare(nudged, same), "not distinguishable")):
        low, high = 100 * found.low, 100 * found.high
        assert f"{100 * found.difference:+.2f} [{low:+.2f}, {high:+.2f}] {words}" in text


def test_an_old_store_without_items_shows_scores_without_intervals_and_says_so(tmp_path):
    store = ResultStore(tmp_path / "results.jsonl")
    old = [{k: v for k, v in point(a, generated_items(3, 0.6)).items() if k != FIELD} for a in (0.0, 0.5, 1.0)]
    store.append_scored(old)
    records = store.records(with_items=True)
    assert not store.items_store.path.exists()

    table = markdown_table(records)
    assert f"| {100 * old[1]['value']:.2f} |" in table and "[" not in table.split("\n- ")[0]
    assert "3 scores have no items stored (scored before items were kept, or a group's score): no interval" in table
    assert {r["verdict"] for r in comparison_rows(records)} == {"no items stored"}
    files = write_report(records, tmp_path / "report")
    assert "no items stored" in (tmp_path / "report" / "comparisons.md").read_text()
    assert "_low" not in (tmp_path / "report" / "sweep_table.csv").read_text()
    written = [f.relative_to(tmp_path / "report").as_posix() for f in files]
    assert written == [*REPORT, f"plots/{TASK}_vs_alpha.png"]  # the comparisons are written, saying so


def test_the_counted_bootstrap_has_the_distribution_of_resampling_items():
    """``resampled_scores`` draws counts of distinct values, not items: its quantiles equal resampling items."""
    rng = np.random.default_rng(4)
    a = [(f"u{i % 5}", float(rng.random() < 0.3 + 0.1 * (i % 5))) for i in range(300)]
    b = [(uid, v if rng.random() < 0.8 else 1.0 - v) for uid, v in a]
    sa, sb = ItemScores.from_items(a), ItemScores.from_items(b)
    counted = np.subtract(*sa.resampled_scores(np.random.default_rng(0), 20000, sb))
    by_items = np.zeros(20000)
    for cell, weight in enumerate(sa.weights):
        members = np.flatnonzero(sa.cells == cell)
        picks = members[rng.integers(0, len(members), size=(20000, len(members)))]
        by_items += weight * (sa.values[picks].mean(axis=1) - sb.values[picks].mean(axis=1))
    quantiles = [0.025, 0.25, 0.5, 0.75, 0.975]
    assert np.quantile(counted, quantiles) == pytest.approx(np.quantile(by_items, quantiles), abs=0.004)
    assert counted.std() == pytest.approx(by_items.std(), rel=0.03)


def test_alpha_and_words_plots_shade_the_intervals(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.collections import PolyCollection

    from babymerge.sweep.report import PairStyles, alpha_figure, point_rows, words_figure

    def shaded(figure) -> list:
        return [c for axis in figure.axes for c in axis.collections if isinstance(c, PolyCollection)]

    store = ResultStore(tmp_path / "results.jsonl")
    points = [point(a, generated_items(i, 0.6), n) for n in (10**6, 2 * 10**6) for i, a in enumerate((0, 1))]
    store.append_scored([{**r, "pair": f"text={r['text_words']}+multimodal={r['text_words']}"} for r in points])
    for with_items, bands in ((True, 1), (False, 0)):
        records = store.records(with_items=with_items)
        _, rows = point_rows(records)
        styles = PairStyles.of(rows, [rows[0]["pair"]])
        assert len(shaded(alpha_figure(TASK, records, rows, styles, "", "x"))) == bands  # the selected pair's
        assert len(shaded(words_figure(TASK, records, rows, "", "x"))) == 2 * bands  # one per alpha
