"""Evaluation stage: lm-eval tasks for the BabyLM 2025 suite, BabyLM scoring, image-conditioned babyllava."""

from .data import DATA_ENV, data_dir, describe_sources
from .run import evaluate, run_cli, summary_rows, summary_table, tasks_dir

__all__ = [
    "DATA_ENV",
    "data_dir",
    "describe_sources",
    "evaluate",
    "run_cli",
    "summary_rows",
    "summary_table",
    "tasks_dir",
]
