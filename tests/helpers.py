"""Helpers shared by the tests: the ``babymerge`` CLI as a subprocess, the offline environment it runs in, and
the sweep's checkpoint series and store reading."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

CLI = [sys.executable, "-c", "import sys; from babymerge.cli import main; sys.exit(main())"]


def offline_env(**extra: str) -> dict[str, str]:
    """This process's environment with the Hub and datasets offline, plus ``extra`` variables."""
    return {**os.environ, **OFFLINE, **extra}


TASK = "babylm_blimp_fast"


def sweep_cmd(models, world, out: Path, *extra: str) -> list[str]:
    """``babymerge sweep`` on the conftest ``models`` and the demo ``world``'s BLiMP-format task."""
    from babymerge.sweep.merge import BASE, MULTIMODAL, TEXT

    return [
        *CLI,
        "sweep",
        "--text",
        str(models[TEXT]),
        "--multimodal",
        str(models[MULTIMODAL]),
        "--base",
        str(models[BASE]),
        "--tasks",
        TASK,
        "--data-dir",
        str(world / "evaluation_data"),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def raw_keys(store: Path) -> Counter:
    """Every complete line's key, counted (duplicates would show as counts above 1)."""
    from babymerge.sweep.store import record_key

    keys: Counter = Counter()
    for line in store.read_text().splitlines(keepends=True):
        if line.endswith("\n"):
            keys[record_key(json.loads(line))] += 1
    return keys


def series(root: Path, source: Path, names_words: list[tuple[str, int]]) -> Path:
    """A training output folder holding copies of ``source`` as ``checkpoints/NAME`` with their words seen."""
    for name, words in names_words:
        shutil.copytree(source, root / "checkpoints" / name)
        (root / "checkpoints" / name / "babymerge_training.json").write_text(json.dumps({"words_seen": words}))
    return root
