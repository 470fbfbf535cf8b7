"""Per-document results and aggregations that reproduce BabyLM 2025's scores inside lm-eval.

Accuracies are fractions (lm-eval's convention; BabyLM prints them x100). The correct option is index 0
and wins ties, as in BabyLM. Winoground's classic text/image/group scores use strict comparisons.
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


def pair_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """EWoK: ``(uid, correct)`` for a macro-average over UIDs (any model type scores it as BabyLM does)."""
    return {"acc": (doc["uid"], first_wins(_lls(results)))}


@needs_babyllava
def sentence_pair_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """BLiMP, supplement (whole sentences, empty context): ``(uid, correct)``; ``babyllava`` answers only."""
    return {"acc": (doc["uid"], first_wins(_babylm_lls(results)))}


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


@needs_babyllava
def choice_results(doc: dict[str, Any], results: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """Caption matching: correct when the true caption (index 0) scores at least as high."""
    return {"acc": first_wins(_babylm_lls(results))}
