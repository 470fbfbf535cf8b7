"""The paper's selection rule: the best text-only checkpoint by one task (BLiMP), the best multimodal one by
another (Winoground or caption matching), from scores in the results store, which other processes of a
distributed sweep may still be writing. And what the rule cannot tell: whether the selection task separates the
checkpoints at all (every score at chance, a tie for the best, or the best only one item above the runner-up)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .checkpoints import Checkpoint
from .store import PointKey, ResultStore
from .tasks import chance_level


def best_checkpoint(
    store: ResultStore,
    keys: dict[PointKey, Checkpoint],
    task: str,
    wait_s: float = 3600,
    poll_s: float = 2,
    check: Callable[[], None] | None = None,
) -> Checkpoint:
    """The checkpoint whose score (``acc``, else the first metric) is highest; waits for other ranks' scores.

    Ties go to the later checkpoint (more words seen): ``keys`` follow the series, sorted by words."""
    store.wait_for(keys, f"selection scores for {task}", wait_s, poll_s, check)
    scores: dict[PointKey, float] = {}
    for r in store.records():
        key = PointKey.of(r)
        if key in keys and (r["metric"] == "acc" or key not in scores):
            scores[key] = r["value"]
    ranked = {c: scores[k] for k, c in keys.items()}
    return max(reversed(list(ranked)), key=ranked.__getitem__)


def at_chance(value: float, chance: float, items: int) -> bool:
    """Within two binomial standard errors of chance (a two-sided ~95% band)."""
    return abs(value - chance) <= 2 * math.sqrt(chance * (1 - chance) / items)


def verdict(scores: dict[str, float], task: str, items: int | None = None) -> list[str]:
    """Reasons the scores (name -> accuracy in [0, 1]) cannot tell checkpoints apart; empty when they can."""
    if len(scores) < 2:
        return []
    ranked = sorted(scores.values(), reverse=True)
    best, runner_up = ranked[0], ranked[1]
    reasons = []
    chance = chance_level(task)
    if chance and items and all(at_chance(v, chance, items) for v in ranked):
        reasons.append(f"every score is at chance ({100 * chance:g} +- 2 standard errors of {items} items)")
    tied = sum(1 for v in ranked if math.isclose(v, best, abs_tol=1e-9))
    if tied > 1:
        reasons.append(f"{tied} checkpoints tie for the best score ({100 * best:.2f})")
    elif items and best - runner_up <= 1 / items + 1e-9:
        reasons.append(f"the best ({100 * best:.2f}) is within one item of the next ({100 * runner_up:.2f})")
    return reasons


def selection_remarks(records: list[dict[str, Any]]) -> list[str]:
    """One line per (role, task) of the selection rule's stored scores whose task cannot tell checkpoints apart."""
    groups: dict[tuple[str, str], dict[str, float]] = {}
    items: dict[tuple[str, str], int] = {}
    for r in records:
        scored = PointKey.of(r).scored_checkpoint()
        if scored is None or r.get("metric") != "acc":
            continue
        role, name = scored
        key = (role, r["task"])
        groups.setdefault(key, {})[name] = r["value"]
        if r.get("items"):
            items[key] = int(r["items"])
    lines = []
    for (role, task), scores in groups.items():
        if reasons := verdict(scores, task, items.get((role, task))):
            lines.append(
                f"{task} cannot tell the {len(scores)} {role} checkpoints apart: "
                + "; ".join(reasons)
                + " (ties go to the later checkpoint)"
            )
    return lines
