"""What the paper's selection rule can and cannot tell: for the checkpoint scores it picked from, whether
the selection task separates them at all (every score at chance, a tie for the best, or the best only one
item above the runner-up)."""

from __future__ import annotations

import math
from typing import Any

from .tasks import chance_level

SELECT = "checkpoint"  # the ``method`` of single-checkpoint results used by the selection rule


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
        if r.get("method") != SELECT or r.get("metric") != "acc":
            continue
        role, _, name = r["pair"].partition("=")
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
