"""95% intervals over items and paired comparisons for babymerge's scores.

A task's per-document metric items are what its ``process_results`` emits and its aggregation consumes: a bare
value (plain mean: caption matching, Winoground), ``(uid, value)`` (mean per UID, then over UIDs: BLiMP, EWoK) or
``(split, numops, value)`` (Entity Tracking's nested means), or ``(p_model, human)`` pairs for a Spearman
correlation (Wug). ``ItemScores`` turns the averaging kinds into values, cells and cell weights so that the score is
``sum_c w_c * mean(values in c)``, which is exactly each task's aggregation.

- ``interval``: an accuracy of 0/1 items in one cell gets the exact (Clopper-Pearson) binomial interval; anything
  else a percentile bootstrap that resamples items within each cell (the cells are the tasks' fixed design),
  drawn as multinomial counts of each cell's distinct values: the same distribution, at the cost of those values.
- ``compare``: the difference of two models on the same items, with a paired bootstrap interval (the same
  resampled items for both) and, for 0/1 items, McNemar's exact test; the verdict is "ahead" or "behind" when the
  interval excludes 0, else "not distinguishable".
- ``seed_interval``: mean and t-interval over training seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

LEVEL = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class ItemScores:
    """Per-item values of one task, grouped into the cells its aggregation averages."""

    values: np.ndarray  # (items,)
    cells: np.ndarray  # (items,) cell index of each item
    weights: np.ndarray  # (cells,) weight of each cell's mean in the score; sums to 1

    @classmethod
    def from_items(cls, items: Sequence[Any]) -> ItemScores:
        """From a task's metric items: values, or tuples of nested group keys ending with the value."""
        if not items:
            raise ValueError("no items to score")
        keyed = [tuple(item[:-1]) if isinstance(item, (tuple, list)) else () for item in items]
        values = np.array([item[-1] if isinstance(item, (tuple, list)) else item for item in items], dtype=float)
        depth = {len(k) for k in keyed}
        if len(depth) != 1:
            raise ValueError(f"items mix group depths {sorted(depth)}")
        index = {key: i for i, key in enumerate(dict.fromkeys(keyed))}
        cells = np.array([index[k] for k in keyed])
        weights = np.array([_nested_weight(key, list(index)) for key in index])
        return cls(values, cells, weights)

    def score(self) -> float:
        means = np.bincount(self.cells, self.values) / np.bincount(self.cells)
        return float(means @ self.weights)

    def resampled_scores(self, rng: np.random.Generator, resamples: int = RESAMPLES, *others: ItemScores):
        """Scores of ``resamples`` stratified bootstrap samples of this task (and of ``others`` on the same
        resampled items, for paired comparisons): an array ``(1 + len(others), resamples)``."""
        # Drawing a cell's n items with replacement counts each distinct value row (a, b, ...) of the cell
        # multinomially: the same distribution as resampling the items, at the cost of the distinct rows only.
        rows = np.stack([scores.values for scores in (self, *others)], axis=1)  # (items, models)
        distinct, which = np.unique(np.column_stack([self.cells, rows]), axis=0, return_inverse=True)
        which = which.reshape(-1)
        cell_of = distinct[:, 0].astype(int)
        slot = np.arange(len(distinct)) - np.searchsorted(cell_of, cell_of)  # position of a row in its cell
        sizes = np.bincount(self.cells, minlength=len(self.weights))
        counts = np.zeros((len(self.weights), slot.max() + 1))
        np.add.at(counts, (cell_of, slot), np.bincount(which, minlength=len(distinct)))
        values = np.zeros((*counts.shape, rows.shape[1]))
        values[cell_of, slot] = distinct[:, 1:]
        drawn = _multinomial(rng, sizes, counts / sizes[:, None], resamples)
        means = np.einsum("rcd,cdm->rcm", drawn, values) / sizes[None, :, None]
        return np.einsum("rcm,c->mr", means, self.weights)

    def same_items(self, other: ItemScores) -> bool:
        return np.array_equal(self.cells, other.cells) and np.array_equal(self.weights, other.weights)


def _multinomial(rng: np.random.Generator, n: np.ndarray, p: np.ndarray, resamples: int) -> np.ndarray:
    """``resamples`` multinomial draws for each row of ``p`` (cells x categories) with ``n`` trials per cell,
    as conditional binomials (fast for the few categories of 0/1 items): an array (resamples, cells, categories)."""
    if p.shape[1] > 16:
        return rng.multinomial(n, p, size=(resamples, len(n)))
    out = np.zeros((resamples, *p.shape), dtype=np.int64)
    left = np.broadcast_to(n, (resamples, len(n))).astype(np.int64)
    rest = np.ones(len(n))
    for category in range(p.shape[1] - 1):
        share = np.divide(p[:, category], rest, out=np.zeros(len(n)), where=rest > 1e-12).clip(0, 1)
        out[:, :, category] = rng.binomial(left, share)
        left = left - out[:, :, category]
        rest = rest - p[:, category]
    out[:, :, -1] = left
    return out


def _nested_weight(key: tuple, keys: list[tuple]) -> float:
    """Weight of a cell in a mean of means: at each level, 1 / (siblings sharing the parent's keys)."""
    weight = 1.0
    for level in range(len(key)):
        siblings = {k[level] for k in keys if k[:level] == key[:level]}
        weight /= len(siblings)
    return weight


@dataclass(frozen=True)
class Interval:
    score: float
    low: float
    high: float
    method: str  # "exact binomial" or "bootstrap"


@dataclass(frozen=True)
class Comparison:
    difference: float  # a - b
    low: float
    high: float
    p_mcnemar: float | None  # exact McNemar p-value for 0/1 items, else None
    verdict: str  # "ahead", "behind" or "not distinguishable" (a against b, at the level)


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0.0, 1.0)).all())


def interval(items: Sequence[Any], level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """The score of a task's metric items with its ``level`` interval over items."""
    if _is_spearman(items):
        return _spearman_interval(items, level, resamples, seed)
    scores = ItemScores.from_items(items)
    if len(scores.weights) == 1 and _is_binary(scores.values):
        n, k = len(scores.values), int(scores.values.sum())
        ci = stats.binomtest(k, n).proportion_ci(level, method="exact")
        return Interval(k / n, float(ci.low), float(ci.high), "exact binomial")
    boot = scores.resampled_scores(np.random.default_rng(seed), resamples)[0]
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return Interval(scores.score(), float(low), float(high), "bootstrap")


def compare(
    a_items: Sequence[Any], b_items: Sequence[Any], level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0
) -> Comparison:
    """Model a against model b on the same items (same documents, same order)."""
    if len(a_items) != len(b_items):
        raise ValueError(f"paired comparison needs the same items: {len(a_items)} vs {len(b_items)}")
    rng = np.random.default_rng(seed)
    if _is_spearman(a_items):
        boot_a, boot_b = _spearman_resamples(rng, resamples, a_items, b_items)
        difference = _spearman(a_items) - _spearman(b_items)
        p = None
    else:
        a, b = ItemScores.from_items(a_items), ItemScores.from_items(b_items)
        if not a.same_items(b):
            raise ValueError("paired comparison needs the same items: their groups differ")
        boot_a, boot_b = a.resampled_scores(rng, resamples, b)
        difference = a.score() - b.score()
        p = _mcnemar(a.values, b.values) if _is_binary(a.values) and _is_binary(b.values) else None
    low, high = np.nanquantile(boot_a - boot_b, [(1 - level) / 2, (1 + level) / 2])  # a constant-rank resample: nan
    return Comparison(difference, float(low), float(high), p, verdict(float(low), float(high)))


def verdict(low: float, high: float) -> str:
    """In words, from an interval of a difference a - b."""
    if low > 0:
        return "ahead"
    if high < 0:
        return "behind"
    return "not distinguishable"


def _mcnemar(a: np.ndarray, b: np.ndarray) -> float:
    """Exact McNemar test: the discordant items split as a fair coin would split them."""
    only_a, only_b = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def _is_spearman(items: Sequence[Any]) -> bool:
    """Wug's items are ``(model probability, human ratio)`` pairs of floats (no string group key)."""
    first = items[0] if items else None
    return isinstance(first, (tuple, list)) and len(first) == 2 and not isinstance(first[0], str)


def _spearman(items: Sequence[Any]) -> float:
    model, human = np.asarray(items, dtype=float).T
    return float(stats.spearmanr(model, human).statistic)


def _rowwise_spearman(model: np.ndarray, human: np.ndarray) -> np.ndarray:
    rm, rh = stats.rankdata(model, axis=-1), stats.rankdata(human, axis=-1)
    rm -= rm.mean(axis=-1, keepdims=True)
    rh -= rh.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rm * rh).sum(-1) / np.sqrt((rm * rm).sum(-1) * (rh * rh).sum(-1))


def _spearman_resamples(rng: np.random.Generator, resamples: int, *item_sets: Sequence[Any]) -> list[np.ndarray]:
    arrays = [np.asarray(items, dtype=float) for items in item_sets]
    picks = rng.integers(0, len(arrays[0]), size=(resamples, len(arrays[0])))
    return [_rowwise_spearman(a[:, 0][picks], a[:, 1][picks]) for a in arrays]


def _spearman_interval(items: Sequence[Any], level: float, resamples: int, seed: int) -> Interval:
    (boot,) = _spearman_resamples(np.random.default_rng(seed), resamples, items)
    low, high = np.nanquantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return Interval(_spearman(items), float(low), float(high), "bootstrap")


def seed_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean over training seeds with a t-interval. Nan bounds for fewer than two seeds, and for seeds that all
    agree (sd 0): a zero-width interval would claim certainty that a few seeds cannot give."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2 or float(np.ptp(values)) <= 1e-9 * max(1.0, abs(mean)):  # equal up to rounding
        return Interval(mean, float("nan"), float("nan"), "t over seeds")
    half = stats.t.ppf((1 + level) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return Interval(mean, mean - half, mean + half, "t over seeds")
