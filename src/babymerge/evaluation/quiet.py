"""lm-eval and library messages that say nothing about a babymerge run, avoided where they start.

Each is dropped by its exact text and only where babymerge causes it; every other warning passes:
- lm-eval's task loader advises ``Custom kwargs can be passed to `--metadata` ...`` once per task whose
  dataset comes from a function: babymerge's tasks all do, and already read ``data_dir`` from the metadata;
- lm-eval's ``simple_evaluate`` records the current folder's git commit with ``git describe`` and lets git
  print ``fatal: not a git repository`` outside one: git is asked with its stderr captured instead;
- HFLM warns twice (accelerate, distributed set-up) when given a loaded model, as the sweep does on purpose.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess

from ..logs import DropMessages, dropped

CUSTOM_KWARGS = ": Custom kwargs can be passed to `--metadata`"
LOADED_MODEL = (
    "`pretrained` model kwarg is not of type `str`.",
    "Passed an already-initialized model through `pretrained`",
)


def _ours_advised(message: str) -> bool:
    from .plugin import babymerge_task_names

    task, found, _ = message.partition(CUSTOM_KWARGS)
    return bool(found) and task in babymerge_task_names()


def custom_dataset_advice() -> None:
    """No ``Custom kwargs ... --metadata`` advice for babymerge's tasks (idempotent)."""
    logger = logging.getLogger("lm_eval.api.task")
    if not any(isinstance(f, DropMessages) and f.drop is _ours_advised for f in logger.filters):
        logger.addFilter(DropMessages(_ours_advised))


def git_lookup() -> None:
    """lm-eval's ``get_git_commit_hash`` with git's stderr captured (same value; idempotent)."""
    from lm_eval import evaluator
    from lm_eval.loggers.utils import get_commit_from_path

    if getattr(evaluator.get_git_commit_hash, "_babymerge", False):
        return

    def get_git_commit_hash() -> str | None:
        try:
            done = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True, check=True)
        except (subprocess.CalledProcessError, FileNotFoundError):
            return get_commit_from_path(os.getcwd())
        return done.stdout.strip()

    get_git_commit_hash._babymerge = True
    evaluator.get_git_commit_hash = get_git_commit_hash


def loaded_model() -> contextlib.AbstractContextManager:
    """Around wrapping a loaded model in HFLM: its two warnings about that are dropped."""
    return dropped("lm_eval.models.huggingface", lambda message: message.startswith(LOADED_MODEL))
