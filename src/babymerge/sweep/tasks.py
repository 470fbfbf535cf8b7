"""How the sweep's reports name a task, where its chance level lies, and when two checkpoints saw equal words."""

from __future__ import annotations

import fnmatch
from typing import Any

from ..evaluation.controls import image_task_of, with_controls

# Names people use for the BabyLM tasks (titles of tables and plots); patterns over lm-eval task names.
TITLES = {
    "babylm_blimp_supplement_fast": "BLiMP supplement (fast)",
    "babylm_blimp_supplement": "BLiMP supplement",
    "babylm_blimp_fast": "BLiMP (fast)",
    "babylm_blimp_original": "BLiMP (original)",
    "babylm_blimp": "BLiMP",
    "babylm_ewok_fast": "EWoK (fast)",
    "babylm_ewok": "EWoK",
    "babylm_entity_tracking_fast": "Entity Tracking (fast)",
    "babylm_entity_tracking": "Entity Tracking",
    "babylm_wug_adj": "Wug adjective nominalization",
    "babylm_wug_past": "Wug past tense",
    "babylm_winoground": "Winoground",
    "babylm_caption_matching_fast": "Caption matching",
    "babylm_caption_matching": "Caption matching",
}
# Chance level (the score's own scale, 0..1) of each task family; Wug is a correlation.
CHANCE = {
    "babylm_blimp*": 0.5,
    "babylm_ewok*": 0.5,
    "babylm_caption_matching*": 0.5,
    "babylm_winoground*": 0.5,
    "babylm_entity_tracking*": 0.2,  # five options per item
    "babylm_wug*": 0.0,
}
TOLERANCE = 0.05  # relative difference in words seen that still counts as equal (milestones fall inside a batch)
IMAGE_TASKS = ("babylm_caption_matching*", "babylm_winoground*")


def title(task: str, titles: dict[str, str] | None = None) -> str:
    """A task's usual name; a no-image control's is its image task's, ``, no image`` added."""
    if (titles or {}).get(task):
        return titles[task]  # type: ignore[index]
    if (image_task := image_task_of(task)) is not None:
        return f"{title(image_task, titles)}, no image"
    return TITLES.get(task, task)


def point_tasks(tasks: list[str], alpha: float | None) -> list[str]:
    """The tasks scored at a sweep point: ``tasks``, and at alpha 0 and 1 (the parents) each image task's
    no-image control (``evaluation.controls``); merges skip the controls (they would double an image task's cost)."""
    return with_controls(tasks) if alpha in (0.0, 1.0) else list(tasks)


def limited_titles(records: list[dict[str, Any]], titles: dict[str, str] | None = None) -> dict[str, str]:
    """``titles`` where each task scored under a document limit (records' ``limit``) says so:
    ``BLiMP (fast), limit 100 per task``."""
    out = dict(titles or {})
    for task, limit in {r["task"]: r["limit"] for r in records if r.get("limit")}.items():
        name, suffix = title(task, titles), f", limit {limit:g} per task"
        out[task] = name if name.endswith(suffix) else name + suffix
    return out


def chance_level(task: str) -> float | None:
    return next((level for pattern, level in CHANCE.items() if fnmatch.fnmatch(task, pattern)), None)


def is_image_task(task: str) -> bool:
    return any(fnmatch.fnmatch(task, pattern) for pattern in IMAGE_TASKS)


def words_label(words: int | None) -> str:
    """``1.6M``, ``150k``, ``900``."""
    if words is None:
        return "?"
    for scale, suffix in ((1_000_000, "M"), (1_000, "k")):
        if words >= scale:
            return f"{words / scale:.3g}{suffix}"
    return str(words)


def equal_words(text_words: int | None, multimodal_words: int | None) -> bool:
    if not text_words or not multimodal_words:
        return False
    return abs(text_words - multimodal_words) <= TOLERANCE * max(text_words, multimodal_words)
