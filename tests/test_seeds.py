"""Several training seeds and the seed pre-training arm in ``babymerge demo``; the tables across seeds."""

from __future__ import annotations

import csv
import json
import math
import shutil
import statistics
from pathlib import Path

import pytest
from helpers import run_cli, weights
from scipy import stats

from babymerge.sweep.fingerprint import checkpoint_fingerprint
from babymerge.sweep.items import encode
from babymerge.sweep.seeds import pooled_comparison, pooled_items, seed_verdict, select_by_mean
from babymerge.sweep.store import PointKey, ResultStore

QUICK = ["--quick", "--no-progress", "--epochs", "1", "--batch-size", "8"]  # small steps: totals to ~2%
SEED_WORDS = 5000


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> dict:
    """A quick demo without seeds, then one with two seeds and seed pre-training on the same shared stages."""
    root = tmp_path_factory.mktemp("seeds")
    plain = run_cli("demo", *QUICK, "--out", root / "plain")
    assert plain.returncode == 0, plain.stderr[-3000:]
    for shared in ("world", "tokenizer", "features.safetensors"):  # made once from --seed: the same in both
        copy = shutil.copytree if (root / "plain" / shared).is_dir() else shutil.copy
        copy(root / "plain" / shared, root / "seeds" / shared)
    seeds = run_cli("demo", *QUICK, "--out", root / "seeds", "--seeds", "2", "--seed-words", str(SEED_WORDS))
    assert seeds.returncode == 0, seeds.stderr[-3000:]
    return {"plain": root / "plain", "seeds": root / "seeds", "stdout": seeds.stdout}


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def meta(run: Path) -> dict:
    return json.loads((run / "checkpoints" / "final" / "babymerge_training.json").read_text())


@pytest.mark.slow
def test_default_demo_writes_no_seed_folders(demos):
    plain = demos["plain"]
    assert (plain / "init").is_dir() and (plain / "sweep" / "results.jsonl").is_file()
    assert not list(plain.glob("seed-*")) and not (plain / "seeds").exists() and not (plain / "seed_run").exists()


@pytest.mark.slow
def test_each_seed_trains_its_own_pair(demos):
    out = demos["seeds"]
    assert sorted(p.name for p in out.glob("seed-*")) == ["seed-0", "seed-1"]
    for part in ("init", "text_run", "multimodal_run"):  # different initialisations, hence different runs
        a, b = (weights(out / f"seed-{s}" / part / ("" if part == "init" else "checkpoints/final")) for s in (0, 1))
        assert a.keys() == b.keys() and any(not a[k].equal(b[k]) for k in a)
    assert meta(out / "seed-1" / "text_run")["seed"] == 1
    assert "Across seeds [0, 1]" in demos["stdout"] and "seeds [" in demos["stdout"]
    assert {"seeds.md", "seeds_sweep.csv", "seeds_equal_words.csv"} <= {p.name for p in (out / "seeds").iterdir()}


def store_values(out: Path) -> dict[int, dict[tuple, float]]:
    """Per seed, each primary-metric score x100 read from that seed's own store."""
    found = {}
    for seed in (0, 1):
        records = ResultStore(out / f"seed-{seed}" / "sweep" / "results.jsonl").records()
        found[seed] = {(r["pair"], r["method"], r["alpha"], r["task"], r["metric"]): 100 * r["value"] for r in records}
    return found


@pytest.mark.slow
def test_seed_cells_are_means_of_the_stores_with_a_t_interval(demos):
    values = store_values(demos["seeds"])
    table = rows(demos["seeds"] / "seeds" / "seeds_sweep.csv")
    assert table and {r["seeds"] for r in table} == {"2"}
    for row in table:
        key = (row["pair"], row["method"], float(row["alpha"]), row["task"], row["metric"])
        mine = [values[0][key], values[1][key]]
        assert float(row["mean"]) == pytest.approx(statistics.fmean(mine))
        assert float(row["min"]) == pytest.approx(min(mine)) and float(row["max"]) == pytest.approx(max(mine))
        half = stats.t.ppf(0.975, 1) * statistics.stdev(mine) / math.sqrt(2)  # the t-interval, computed here
        if half == 0:  # the seeds agree: no interval
            assert row["seed_low"] == row["seed_high"] == "nan"
        else:
            assert float(row["seed_low"]) == pytest.approx(statistics.fmean(mine) - half)
            assert float(row["seed_high"]) == pytest.approx(statistics.fmean(mine) + half)
        assert float(row["item_low"]) <= float(row["mean"]) + 1e-9 <= float(row["item_high"]) + 2e-9
    equal = rows(demos["seeds"] / "seeds" / "seeds_equal_words.csv")
    for row in (r for r in equal if r["side"] == "difference"):
        pair = f"text={row['milestone']}+multimodal={row['milestone']}"
        at = [{a: values[s][(pair, "linear", a, row["task"], row["metric"])] for a in (0.0, 1.0)} for s in (0, 1)]
        assert float(row["mean"]) == pytest.approx(statistics.fmean(v[1.0] - v[0.0] for v in at))
        assert row["pooled_verdict"] in ("ahead", "behind", "not distinguishable")


@pytest.mark.slow
def test_the_pair_is_selected_by_its_mean_over_seeds(demos):
    stores = {s: ResultStore(demos["seeds"] / f"seed-{s}" / "sweep" / "results.jsonl").records() for s in (0, 1)}
    means: dict[tuple[str, str], list[float]] = {}
    for records in stores.values():
        for r in records:
            if (scored := PointKey.of(r).scored_checkpoint()) and r["metric"] == "acc":
                means.setdefault(scored, []).append(r["value"])
    best = {}
    for role in ("text", "multimodal"):
        mine = {name: statistics.fmean(v) for (r, name), v in means.items() if r == role and len(v) == 2}
        top = max(mine.values())
        best[role] = [name for name, v in mine.items() if v == top]
    pairs = {r["pair"] for r in rows(demos["seeds"] / "seeds" / "seeds_sweep.csv") if r["method"] == "ties"}
    assert len(pairs) == 1
    text, multimodal = pairs.pop().removeprefix("text=").split("+multimodal=")
    assert text in best["text"] and multimodal in best["multimodal"]


@pytest.mark.slow
def test_seed_pre_training_continues_the_words_and_is_the_base(demos):
    plain, out = demos["plain"], demos["seeds"] / "seed-0"
    seed_final = out / "seed_run" / "checkpoints" / "final"
    first = meta(out / "seed_run")["words_seen"]
    step = meta(out / "seed_run")["words_seen"] / meta(out / "seed_run")["global_step"]
    assert abs(first - SEED_WORDS) <= step  # about N words: whole optimizer steps
    for run in ("text_run", "multimodal_run"):
        assert Path(meta(out / run)["init"]) == seed_final.resolve()
        log = out / run / "loss.jsonl"  # logged every 20 steps: the short text run may log none
        loss = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
        assert all(row["words_seen"] > first for row in loss) and (loss or run == "text_run")
        milestones = [meta_of(c) for c in (out / run / "checkpoints").iterdir() if c.name != "final"]
        assert milestones and min(m["words_seen"] for m in milestones) > first
        # the same total words per run as without the arm, within a few percent
        assert meta(out / run)["words_seen"] == pytest.approx(meta(plain / run)["words_seen"], rel=0.05)
    bases = {
        r["input_fields"]["base"]
        for r in ResultStore(out / "sweep" / "results.jsonl").records()
        if r.get("input_fields", {}).get("base")
    }
    assert bases == {checkpoint_fingerprint(seed_final)}
    assert checkpoint_fingerprint(out / "init") not in bases


def meta_of(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "babymerge_training.json").read_text())


def test_pooled_items_average_each_item_over_seeds():
    a = [("uid1", 1.0), ("uid1", 0.0), ("uid2", 1.0)]
    b = [("uid1", 0.0), ("uid1", 0.0), ("uid2", 1.0)]
    assert pooled_items([encode(a), encode(b)]) == [["uid1", 0.5], ["uid1", 0.0], ["uid2", 1.0]]
    assert pooled_items([encode([1.0, 0.0]), encode([0.0, 0.0])]) == [0.5, 0.0]
    assert pooled_items([encode([[0.25, 1.0], [0.5, 2.0]]), encode([[0.75, 1.0], [0.5, 2.0]])]) == [
        [0.5, 1.0],
        [0.5, 2.0],
    ]
    assert pooled_items([encode(a), encode(a[:2])]) is None  # other documents: nothing to pool


def test_the_pooled_paired_verdict():
    weak = [encode([float(i % 2) for i in range(200)]) for _ in range(3)]  # 50% in each seed
    strong = [encode([float(i % 10 != 0) for i in range(200)]) for _ in range(3)]  # 90% in each seed
    same = pooled_comparison(weak, weak)
    assert same.difference == 0 and same.verdict == "not distinguishable"
    assert pooled_comparison(strong, weak).verdict == "ahead"
    assert pooled_comparison(weak, strong).verdict == "behind"
    assert pooled_comparison(strong, [*weak[:2], None]) is None
    # the seeds pooled, not the first seed alone: 90%, 10% and 50% against 50% in each is no difference
    mixed = [strong[0], encode([float(i % 10 == 0) for i in range(200)]), weak[0]]
    pooled = pooled_comparison(mixed, weak)
    assert pooled.difference == pytest.approx(0) and pooled.verdict == "not distinguishable"


def test_the_seed_verdict_needs_a_spread():
    assert seed_verdict([2.0, 3.0, 2.5]) == "ahead"
    assert seed_verdict([-2.0, -3.0, -2.5]) == "behind"
    assert seed_verdict([2.0, -3.0, 2.5]) == "not distinguishable"
    assert seed_verdict([1.25, 1.25]) == "no spread over seeds"  # not "ahead" from a zero-width interval


def test_selection_by_mean_over_seeds():
    def selection(role, name, words, value):
        key = PointKey.checkpoint(role, name, "t", "inputs")
        return {**key.fields(), "metric": "acc", "value": value, f"{role}_words": words}

    stores = {  # seed 0 prefers 1M, seed 1 prefers 2M; the mean prefers 2M; 3M is missing from seed 1
        0: [selection("text", "1M", 1, 0.9), selection("text", "2M", 2, 0.8), selection("text", "3M", 3, 1.0)],
        1: [selection("text", "1M", 1, 0.5), selection("text", "2M", 2, 0.7)],
    }
    assert select_by_mean(stores) == {"text": "2M"}
    stores[1][1]["value"] = 0.6  # a tie of the means: the later checkpoint
    assert select_by_mean(stores) == {"text": "2M"}


def test_seed_options_are_checked(tmp_path, cli):
    from pydantic import ValidationError

    from babymerge.demo.config import DemoConfig

    assert DemoConfig(seeds=3).seeds == [0, 1, 2] and DemoConfig().seeds is None
    with pytest.raises(ValidationError, match="distinct"):
        DemoConfig(seeds=[1, 1])
    result = cli("demo", "--quick", "--no-progress", "--out", tmp_path / "d", "--seed-words", "10000000", timeout=90)
    err = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "error: seed_words 10,000,000: must be below the text run" in err[-1]
    assert not (tmp_path / "d" / "init").exists() and not (tmp_path / "d" / "seed_run").exists()
