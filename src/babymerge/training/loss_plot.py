"""Loss curves of training runs (their ``loss.jsonl``) against words seen, in one figure."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from ..errors import BabymergeError
from ..io import atomic_file


def read_loss_log(run: str | os.PathLike) -> list[dict]:
    """The rows of ``RUN/loss.jsonl`` (step, epoch, words_seen, loss, ...)."""
    path = Path(run) / "loss.jsonl"
    if not path.is_file():
        raise BabymergeError(f"{path}: no loss log (expected the output folder of `babymerge train`)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_label(run: Path) -> str:
    config = run / "train_config.yaml"
    mode = yaml.safe_load(config.read_text()).get("mode") if config.is_file() else None
    return f"{run.name} ({mode})" if mode else run.name


def plot_loss(runs: list[str | os.PathLike], out: str | os.PathLike, labels: list[str] | None = None) -> Path:
    """Plot training loss against words seen for each run and save the figure (PNG, PDF or SVG) to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [Path(run) for run in runs]
    if labels is not None and len(labels) != len(runs):
        raise BabymergeError(f"got {len(labels)} labels for {len(runs)} runs")
    figure, axis = plt.subplots(figsize=(6, 4))
    for run, label in zip(runs, labels or [run_label(run) for run in runs], strict=True):
        rows = read_loss_log(run)
        axis.plot([r["words_seen"] for r in rows], [r["loss"] for r in rows], label=label)
    axis.set_xlabel("words seen")
    axis.set_ylabel("training loss")
    axis.set_xscale("log")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    out = Path(out)
    with atomic_file(out) as tmp:
        figure.savefig(tmp, format=out.suffix.lstrip(".") or "png", dpi=120)
    plt.close(figure)
    return out
