"""Per-document results and aggregations that reproduce BabyLM 2025's scores inside lm-eval.

Accuracies are fractions (lm-eval's convention; BabyLM prints them x100). The correct option is index 0
and wins ties, as in BabyLM. Winoground's classic text/image/group scores use strict comparisons.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr


def _lls(results: Sequence[tuple[float, bool]]) -> list[float]:
    return [float(r[0]) for r in results]


def first_wins(lls: Sequence[float]) -> float:
    """1.0 when option 0 scores at least as high as every other option (ties go to the first)."""
    return float(lls[0] >= max(lls[1:]))


def pair_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """BLiMP, supplement, EWoK: ``(uid, correct)`` for a macro-average over UIDs."""
    return {"acc": (doc["uid"], first_wins(_lls(results)))}


def macro_accuracy(items: Sequence[tuple[str, float]]) -> float:
    """Accuracy per UID, then the mean over UIDs."""
    groups: dict[str, list[float]] = defaultdict(list)
    for uid, correct in items:
        groups[uid].append(correct)
    return float(np.mean([np.mean(v) for v in groups.values()]))


def entity_tracking_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    return {"acc": (doc["split"], doc["numops"], first_wins(_lls(results)))}


def entity_tracking_accuracy(items: Sequence[tuple[str, int, float]]) -> float:
    """Accuracy per (split, numops), mean over numops within a split, then mean over splits."""
    cells: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for split, numops, correct in items:
        cells[split][numops].append(correct)
    return float(np.mean([np.mean([np.mean(v) for v in ops.values()]) for ops in cells.values()]))


def wug_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """Probability of the first sentence after a softmax over the two, paired with the human ratio."""
    first, second = _lls(results)
    top = max(first, second)
    p_first = math.exp(first - top) / (math.exp(first - top) + math.exp(second - top))
    return {"spearman": (p_first, doc["ratio"])}


def spearman(items: Sequence[tuple[float, float]]) -> float:
    """Spearman correlation between model probabilities and human ratios."""
    model, human = zip(*items, strict=True)
    if len(items) < 2:
        return float("nan")
    return float(spearmanr(model, human).statistic)


def winoground_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """Unpaired accuracy (BabyLM's Winoground score) and the items the classic scores pair up."""
    lls = _lls(results)
    item = (doc["example"], doc["image_key"], lls[0], lls[1])
    return {"acc": first_wins(lls), "text_score": item, "image_score": item, "group_score": item}


def _paired(items: Sequence[tuple[int, str, float, float]]) -> list[tuple[bool, bool]]:
    """(text correct, image correct) per Winoground example whose two images are both present.

    Row of image_0: (s(c0|i0), s(c1|i0)); row of image_1 (captions swapped): (s(c1|i1), s(c0|i1)).
    """
    rows: dict[int, dict[str, tuple[float, float]]] = defaultdict(dict)
    for example, key, ll_true, ll_other in items:
        rows[example][key] = (ll_true, ll_other)
    out = []
    for pair in rows.values():
        if len(pair) != 2:
            continue
        (c0_i0, c1_i0), (c1_i1, c0_i1) = pair["image_0"], pair["image_1"]
        out.append((c0_i0 > c1_i0 and c1_i1 > c0_i1, c0_i0 > c0_i1 and c1_i1 > c1_i0))
    return out


def text_score(items: Sequence[tuple[int, str, float, float]]) -> float:
    paired = _paired(items)
    return float(np.mean([t for t, _ in paired])) if paired else float("nan")


def image_score(items: Sequence[tuple[int, str, float, float]]) -> float:
    paired = _paired(items)
    return float(np.mean([i for _, i in paired])) if paired else float("nan")


def group_score(items: Sequence[tuple[int, str, float, float]]) -> float:
    paired = _paired(items)
    return float(np.mean([t and i for t, i in paired])) if paired else float("nan")


def choice_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """Caption matching: correct when the true caption (index 0) scores at least as high."""
    return {"acc": first_wins(_lls(results))}
