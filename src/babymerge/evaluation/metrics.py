"""Per-document results and aggregations that reproduce BabyLM 2025's scores inside lm-eval.

Accuracies are fractions (lm-eval's convention; BabyLM prints them x100). The correct option is index 0
and wins ties, as in BabyLM (``acc``, the primary metric). Beside it each choice task reports
``tie_fraction``, the share of items whose correct option ties exactly with another for the highest score,
and ``acc_tie_neutral``, the same aggregation with a k-way tie scoring 1/k (the expected accuracy when ties are
broken at random). Winoground's classic text/image/group scores use strict comparisons; their tie-neutral
versions score each tied comparison 1/2.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from ..errors import BabymergeError


class BabyLMAnswer(tuple):
    """``(log-likelihood, is_greedy)`` as the ``babyllava`` model type returns it: scored by BabyLM's rules."""


class ModelTypeError(BabymergeError, SystemExit):
    """A task that only ``--model babyllava`` scores as BabyLM does got another model type's answers.

    Also a ``SystemExit``, so plain ``lm_eval`` stops with this one line (exit status 1) instead of a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = message


WRONG_MODEL_TYPE = (
    "babymerge's whole-sentence and image tasks (BLiMP, supplement, Wug, Winoground, caption matching) need "
    "`--model babyllava` (or `babymerge eval`): other lm-eval model types score an empty context as one prefix "
    "token, not as BabyLM's `<s> <image>`, and give other numbers"
)


def needs_babyllava(process_results):
    """Marks a ``process_results`` that only ``babyllava``'s answers satisfy; lm-eval is stopped before scoring
    when another model type is given such a task (``plugin.refuse_other_model_types``)."""
    process_results.needs_babyllava = True
    return process_results


def _lls(results: Sequence[tuple[float, bool]]) -> list[float]:
    return [float(r[0]) for r in results]


def _babylm_lls(results: Sequence[tuple[float, bool]]) -> list[float]:
    """Log-likelihoods of a task whose context is empty; refuses answers not computed by ``babyllava``."""
    if not all(isinstance(r, BabyLMAnswer) for r in results):
        raise ModelTypeError(WRONG_MODEL_TYPE)
    return _lls(results)


def first_wins(lls: Sequence[float]) -> float:
    """1.0 when option 0 scores at least as high as every other option (ties go to the first)."""
    return float(lls[0] >= max(lls[1:]))


def tie_neutral(lls: Sequence[float]) -> float:
    """1/k when option 0 shares the highest score with k - 1 others (1.0 alone at the top, 0.0 below it)."""
    best = max(lls)
    return 1.0 / sum(ll == best for ll in lls) if lls[0] == best else 0.0


def tied(lls: Sequence[float]) -> float:
    """1.0 when option 0 ties exactly with another option for the highest score (BabyLM counts it correct)."""
    return float(0.0 < tie_neutral(lls) < 1.0)


def choice_metrics(lls: Sequence[float], *key: Any) -> dict[str, Any]:
    """``acc`` (BabyLM: ties go to option 0), ``acc_tie_neutral`` and ``tie_fraction`` of one item; the first two
    are prefixed with ``key`` (UID, domain, ...) for the task's aggregation, ``tie_fraction`` is a plain mean."""
    acc, neutral = first_wins(lls), tie_neutral(lls)
    if key:
        acc, neutral = (*key, acc), (*key, neutral)
    return {"acc": acc, "acc_tie_neutral": neutral, "tie_fraction": tied(lls)}


def pair_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """EWoK: ``(uid, correct)`` for a macro-average over UIDs (any model type scores it as BabyLM does)."""
    return choice_metrics(_lls(results), doc["uid"])


@needs_babyllava
def sentence_pair_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """BLiMP, supplement (whole sentences, empty context): ``(uid, correct)``; ``babyllava`` answers only."""
    return choice_metrics(_babylm_lls(results), doc["uid"])


def macro_accuracy(items: Sequence[tuple[str, float]]) -> float:
    """Accuracy per UID, then the mean over UIDs."""
    groups: dict[str, list[float]] = defaultdict(list)
    for uid, correct in items:
        groups[uid].append(correct)
    return float(np.mean([np.mean(v) for v in groups.values()]))


def entity_tracking_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    return choice_metrics(_lls(results), doc["split"], doc["numops"])


def entity_tracking_accuracy(items: Sequence[tuple[str, int, float]]) -> float:
    """Accuracy per (split, numops), mean over numops within a split, then mean over splits."""
    cells: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for split, numops, correct in items:
        cells[split][numops].append(correct)
    return float(np.mean([np.mean([np.mean(v) for v in ops.values()]) for ops in cells.values()]))


@needs_babyllava
def wug_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """Probability of the first sentence after a softmax over the two, paired with the human ratio.

    The softmax is taken in float32, as BabyLM's ``compute_results.py`` does: large gaps saturate at 1.0 and
    tie, which changes the Spearman ranks (float64 would keep them apart).
    """
    logits = np.asarray(_babylm_lls(results), dtype=np.float32)
    weights = np.exp(logits - logits.max())
    p_first = float(weights[0] / weights.sum())
    return {"spearman": (p_first, doc["ratio"])}


def spearman(items: Sequence[tuple[float, float]]) -> float:
    """Spearman correlation between model probabilities and human ratios."""
    model, human = zip(*items, strict=True)
    if len(items) < 2:
        return float("nan")
    return float(spearmanr(model, human).statistic)


@needs_babyllava
def winoground_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """Unpaired accuracy (BabyLM's Winoground score) and the items the classic scores pair up."""
    lls = _babylm_lls(results)
    item = (doc["example"], doc["image_key"], lls[0], lls[1])
    classic = ("text_score", "image_score", "group_score", "image_tie_fraction")
    classic += tuple(f"{name}_tie_neutral" for name in classic[:3])
    return {**choice_metrics(lls), **dict.fromkeys(classic, item)}


def _wins(a: float, b: float, neutral: bool) -> float:
    """1.0 when ``a > b``; a tie scores 1/2 when ``neutral`` (else 0, the classic strict rule)."""
    return 1.0 if a > b else 0.5 if neutral and a == b else 0.0


def _examples(items: Sequence[tuple[int, str, float, float]]) -> list[tuple[float, float, float, float]]:
    """``(s(c0|i0), s(c1|i0), s(c1|i1), s(c0|i1))`` per Winoground example whose two images are both present.

    Row of image_0: (s(c0|i0), s(c1|i0)); row of image_1 (captions swapped): (s(c1|i1), s(c0|i1)).
    """
    rows: dict[int, dict[str, tuple[float, float]]] = defaultdict(dict)
    for example, key, ll_true, ll_other in items:
        rows[example][key] = (ll_true, ll_other)
    return [(*pair["image_0"], *pair["image_1"]) for pair in rows.values() if len(pair) == 2]


def _paired(items: Sequence[tuple[int, str, float, float]], neutral: bool = False) -> list[tuple[float, float]]:
    """(text score, image score) per paired example: the product of its two comparisons, each strict, or
    scoring a tie 1/2 when ``neutral``."""
    return [
        (
            _wins(c0_i0, c1_i0, neutral) * _wins(c1_i1, c0_i1, neutral),
            _wins(c0_i0, c0_i1, neutral) * _wins(c1_i1, c1_i0, neutral),
        )
        for c0_i0, c1_i0, c1_i1, c0_i1 in _examples(items)
    ]


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def text_score(items: Sequence[tuple[int, str, float, float]]) -> float:
    return _mean([t for t, _ in _paired(items)])


def image_score(items: Sequence[tuple[int, str, float, float]]) -> float:
    return _mean([i for _, i in _paired(items)])


def group_score(items: Sequence[tuple[int, str, float, float]]) -> float:
    return _mean([float(t == 1.0 and i == 1.0) for t, i in _paired(items)])


def text_score_tie_neutral(items: Sequence[tuple[int, str, float, float]]) -> float:
    return _mean([t for t, _ in _paired(items, neutral=True)])


def image_score_tie_neutral(items: Sequence[tuple[int, str, float, float]]) -> float:
    return _mean([i for _, i in _paired(items, neutral=True)])


def group_score_tie_neutral(items: Sequence[tuple[int, str, float, float]]) -> float:
    return _mean([t * i for t, i in _paired(items, neutral=True)])


def image_tie_fraction(items: Sequence[tuple[int, str, float, float]]) -> float:
    """Share of paired examples where a caption scores exactly the same given either image."""
    return _mean([float(c0_i0 == c0_i1 or c1_i1 == c1_i0) for c0_i0, c1_i0, c1_i1, c0_i1 in _examples(items)])


@needs_babyllava
def choice_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """Caption matching: correct when the true caption (index 0) scores at least as high."""
    return choice_metrics(_babylm_lls(results))
