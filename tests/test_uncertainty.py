"""Intervals and paired comparisons (``babymerge.evaluation.uncertainty``) on simulated scorers."""

import numpy as np
import pytest
from scipy import stats

from babymerge.evaluation.metrics import entity_tracking_accuracy, macro_accuracy, spearman
from babymerge.evaluation.uncertainty import ItemScores, compare, interval, seed_interval


def blimp_items(rng, p_by_uid, per_uid):
    return [(uid, float(rng.random() < p)) for uid, p in p_by_uid.items() for _ in range(per_uid)]


def test_scores_equal_the_tasks_own_aggregations():
    rng = np.random.default_rng(1)
    blimp = [(f"uid{rng.integers(5)}", float(rng.random() < 0.6)) for _ in range(300)]
    assert ItemScores.from_items(blimp).score() == pytest.approx(macro_accuracy(blimp))
    tracking = [(f"s{rng.integers(2)}", int(rng.integers(4)), float(rng.random() < 0.4)) for _ in range(300)]
    assert ItemScores.from_items(tracking).score() == pytest.approx(entity_tracking_accuracy(tracking))
    plain = [float(rng.random() < 0.7) for _ in range(100)]
    assert ItemScores.from_items(plain).score() == pytest.approx(np.mean(plain))


def test_plain_accuracy_gets_the_exact_binomial_interval():
    result = interval([1.0] * 60 + [0.0] * 40)
    ci = stats.binomtest(60, 100).proportion_ci(0.95, method="exact")
    assert (result.score, result.method) == (0.6, "exact binomial")
    assert (result.low, result.high) == pytest.approx((ci.low, ci.high))


@pytest.mark.parametrize("kind", ["plain", "macro"])
def test_intervals_cover_the_true_accuracy_at_about_the_stated_rate(kind):
    rng = np.random.default_rng(7)
    p_by_uid = {"a": 0.55, "b": 0.7, "c": 0.8, "d": 0.6}
    truth = np.mean(list(p_by_uid.values())) if kind == "macro" else 0.65
    covered, runs = 0, 300
    for run in range(runs):
        if kind == "macro":
            items = blimp_items(rng, p_by_uid, 50)
        else:
            items = [float(rng.random() < truth) for _ in range(200)]
        result = interval(items, resamples=1000, seed=run)
        covered += result.low <= truth <= result.high
    # 95% nominal; 300 runs give a binomial sd of about 1.3 points
    assert 0.90 <= covered / runs <= 0.995, covered / runs


def test_a_model_compared_with_itself_is_not_distinguishable():
    items = blimp_items(np.random.default_rng(0), {"a": 0.6, "b": 0.7}, 100)
    result = compare(items, items)
    assert (result.difference, result.low, result.high) == (0.0, 0.0, 0.0)
    assert result.p_mcnemar == 1.0
    assert result.verdict == "not distinguishable"


def test_a_clearly_better_model_is_ahead_and_the_other_behind():
    rng = np.random.default_rng(3)
    worse = blimp_items(rng, {"a": 0.5, "b": 0.5}, 200)
    better = [(uid, 1.0 if rng.random() < 0.6 else value) for uid, value in worse]  # fixes ~60% of its errors
    ahead, behind = compare(better, worse), compare(worse, better)
    assert ahead.verdict == "ahead" and ahead.low > 0 and ahead.p_mcnemar < 1e-6
    assert behind.verdict == "behind" and behind.high < 0
    assert ahead.difference == pytest.approx(macro_accuracy(better) - macro_accuracy(worse))


def test_a_small_difference_on_few_items_is_not_distinguishable():
    base = [1.0] * 30 + [0.0] * 20
    other = [0.0] + base[1:]  # one item apart
    assert compare(base, other).verdict == "not distinguishable"


def test_paired_comparison_refuses_different_items():
    with pytest.raises(ValueError, match="same items"):
        compare([("a", 1.0)] * 3, [("a", 1.0)] * 4)
    with pytest.raises(ValueError, match="groups differ"):
        compare([("a", 1.0), ("b", 0.0)], [("a", 1.0), ("a", 0.0)])


def test_spearman_interval_and_comparison():
    rng = np.random.default_rng(5)
    human = rng.random(200)
    good = [(h + rng.normal(0, 0.2), h) for h in human]
    noise = [(rng.random(), h) for h in human]
    result = interval(good)
    assert result.score == pytest.approx(spearman(good))
    assert result.low < result.score < result.high and result.method == "bootstrap"
    assert compare(good, noise).verdict == "ahead"
    assert compare(good, good).verdict == "not distinguishable"


def test_seed_interval_is_the_t_interval_over_seeds():
    values = [58.96, 60.0, 58.57, 59.97]
    result = seed_interval(values)
    half = stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / 2
    assert result.score == pytest.approx(np.mean(values))
    assert (result.low, result.high) == pytest.approx((np.mean(values) - half, np.mean(values) + half))
    assert np.isnan(seed_interval([60.0]).low)
    agreeing = seed_interval([1.25, 1.25, 1.25])  # no spread: no interval, not a zero-width one
    assert agreeing.score == pytest.approx(1.25) and np.isnan(agreeing.low) and np.isnan(agreeing.high)
