"""Checkpoint series: the milestone folders of a training run (or one model), with the words each has seen,
and how text-only and multimodal checkpoints are paired for merging."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import BabymergeError

META_FILE = "babymerge_training.json"  # written by babymerge.training beside each milestone checkpoint
_NAME = re.compile(r"^(\d+(?:\.\d+)?)([kMB]?)$")
_SCALE = {"": 1, "k": 1_000, "M": 1_000_000, "B": 1_000_000_000}


@dataclass(frozen=True)
class Checkpoint:
    name: str
    path: Path
    words: int | None

    @property
    def label(self) -> str:
        return self.name


def words_seen(folder: Path) -> int | None:
    """Words a checkpoint was trained on: ``babymerge_training.json``, else a milestone name like ``10M``."""
    meta = folder / META_FILE
    if meta.is_file():
        try:
            value = json.loads(meta.read_text()).get("words_seen")
            if isinstance(value, (int, float)):
                return int(value)
        except json.JSONDecodeError:
            pass
    match = _NAME.match(folder.name)
    return int(float(match.group(1)) * _SCALE[match.group(2)]) if match else None


def find_checkpoints(path: str | os.PathLike) -> list[Checkpoint]:
    """One model folder, or a run's ``checkpoints/`` (or a folder of checkpoint folders), by words seen."""
    path = Path(path)
    if (path / "config.json").is_file():
        return [Checkpoint(path.name, path, words_seen(path))]
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if not folder.is_dir():
        raise BabymergeError(f"{path}: not found (expected a checkpoint folder or a training run's folder)")
    found = [Checkpoint(p.name, p, words_seen(p)) for p in folder.iterdir() if (p / "config.json").is_file()]
    if not found:
        raise BabymergeError(f"{folder}: no checkpoint folders (with config.json) found")
    return sorted(found, key=lambda c: (c.words is None, c.words or 0, c.name))


def aligned_pairs(texts: list[Checkpoint], multimodals: list[Checkpoint]) -> list[tuple[Checkpoint, Checkpoint]]:
    """Checkpoint-by-checkpoint pairs along training: the same milestone name (``1M`` with ``1M``, ``final`` with
    ``final``), else the same words seen."""
    by_name = {c.name: c for c in multimodals}
    by_words = {c.words: c for c in multimodals if c.words is not None}
    pairs = []
    for text in texts:
        other = by_name.get(text.name) or (by_words.get(text.words) if text.words is not None else None)
        if other is not None:
            pairs.append((text, other))
    if not pairs:
        raise BabymergeError(
            "no checkpoints to align: the text-only and multimodal series share no milestone name or words count"
        )
    return pairs
