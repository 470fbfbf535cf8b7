"""Sweep results as a table (markdown and CSV) and PNG plots: each task's score against alpha, and against
words seen for each alpha (checkpoint-by-checkpoint merging)."""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..io import atomic_file

PRIMARY = ("acc", "text_score", "spearman", "acc_norm")


def primary_metric(records: list[dict[str, Any]], task: str) -> str | None:
    """The metric a task is ranked by: ``acc`` when present, else the first one it reports."""
    metrics = list(dict.fromkeys(r["metric"] for r in records if r["task"] == task))
    return next((m for m in PRIMARY if m in metrics), metrics[0] if metrics else None)


def requested_tasks(records: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["task"] for r in records if r.get("alpha") is not None and "/" not in r["task"]))


def point_rows(records: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Wide rows, one per (pair, method, alpha), with each task's primary score x100; and the task names."""
    tasks = requested_tasks(records)
    metrics = {task: primary_metric(records, task) for task in tasks}
    rows: dict[tuple, dict[str, Any]] = {}
    for r in records:
        if r.get("alpha") is None or r["task"] not in metrics or r["metric"] != metrics[r["task"]]:
            continue
        key = (r["pair"], r["method"], float(r["alpha"]))
        row = rows.setdefault(
            key,
            {
                "pair": r["pair"],
                "method": r["method"],
                "alpha": float(r["alpha"]),
                "text": r.get("text"),
                "multimodal": r.get("multimodal"),
                "text_words": r.get("text_words"),
                "multimodal_words": r.get("multimodal_words"),
            },
        )
        row[r["task"]] = 100.0 * r["value"]
    ordered = sorted(rows.values(), key=lambda x: (x["text_words"] or 0, x["pair"], x["method"], x["alpha"]))
    return tasks, ordered


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def markdown_table(records: list[dict[str, Any]]) -> str:
    tasks, rows = point_rows(records)
    labels = [f"{t} ({primary_metric(records, t)} x100)" for t in tasks]
    lines = ["| pair | method | alpha | " + " | ".join(labels) + " |", "|---|---|---|" + "---|" * len(tasks)]
    for row in rows:
        cells = [row["pair"], row["method"], f"{row['alpha']:g}"] + [_fmt(row.get(t)) for t in tasks]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(records: list[dict[str, Any]], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``sweep_table.md`` and ``sweep_table.csv`` in ``out_dir``."""
    out_dir = Path(out_dir)
    tasks, rows = point_rows(records)
    md, csv_path = out_dir / "sweep_table.md", out_dir / "sweep_table.csv"
    with atomic_file(md) as tmp:
        tmp.write_text(markdown_table(records), encoding="utf-8")
    fields = ["pair", "method", "alpha", "text", "multimodal", "text_words", "multimodal_words", *tasks]
    with atomic_file(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return md, csv_path


def is_aligned(row: dict[str, Any]) -> bool:
    """A checkpoint-by-checkpoint pair: the same milestone name, or the same words seen."""
    return row.get("text") == row.get("multimodal") or row.get("text_words") == row.get("multimodal_words")


def _save(figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def pair_styles(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Line style per pair: checkpoint-by-checkpoint pairs shaded by words seen (viridis, early = dark), other
    pairs (the selected best ones) bold in distinct colours."""
    import matplotlib.pyplot as plt

    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    words = {r["pair"]: r.get("text_words") or 0 for r in rows}
    aligned = sorted({r["pair"] for r in rows if is_aligned(r) and r.get("text_words")}, key=words.__getitem__)
    if len(aligned) < 2:
        aligned = []
    shades = plt.cm.viridis([i / max(len(aligned) - 1, 1) * 0.9 for i in range(len(aligned))])
    styles = {pair: {"color": shade, "linewidth": 1.2} for pair, shade in zip(aligned, shades, strict=True)}
    bold = ["black", "tab:red", "tab:blue", "tab:orange", "tab:purple", "tab:brown"]
    for i, pair in enumerate(p for p in pairs if p not in styles):
        styles[pair] = {"color": bold[i % len(bold)], "linewidth": 2.2}
    return styles


def write_plots(records: list[dict[str, Any]], out_dir: str | os.PathLike, note: str = "") -> list[Path]:
    """``<task>_vs_alpha.png`` for every task, and ``<task>_vs_words.png`` when several checkpoint-by-checkpoint
    pairs (same milestone) were swept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks, rows = point_rows(records)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    styles = pair_styles(rows)
    written = []
    for task in tasks:
        metric = primary_metric(records, task)
        series: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
        for r in rows:
            if r.get(task) is not None:
                series[(r["pair"], r["method"])].append((r["alpha"], r[task]))
        panels = [None] if len(pairs) == 1 else methods
        figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
        legend: dict[str, Any] = {}
        for axis, method in zip(axes[0], panels, strict=True):
            for (pair, m), points in series.items():
                if method is not None and m != method:
                    continue
                points.sort()
                style = {} if method is None else styles[pair]
                (line,) = axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, **style)
                legend.setdefault(m if method is None else pair, line)
            axis.set_xlabel("alpha (share of the text-only model)")
            axis.set_ylabel(f"{task} {metric} (x100)")
            axis.set_title(pairs[0] if method is None else method, fontsize=9)
            axis.grid(alpha=0.3)
        if note:
            figure.suptitle(note, fontsize=8)
        figure.tight_layout(rect=(0, 0, 1, 0.95 if note else 1))
        # one legend for all panels, outside them, so no line is hidden
        figure.legend(list(legend.values()), list(legend), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
        written.append(_save(figure, out_dir / f"{task}_vs_alpha.png"))

        by_words = [r for r in rows if r.get(task) is not None and r.get("text_words") and is_aligned(r)]
        if len({r["pair"] for r in by_words}) < 2:
            continue
        word_methods = list(dict.fromkeys(r["method"] for r in by_words))
        figure, axes = plt.subplots(1, len(word_methods), figsize=(5 * len(word_methods), 4), squeeze=False)
        for axis, method in zip(axes[0], word_methods, strict=True):
            alphas = sorted({r["alpha"] for r in by_words if r["method"] == method})
            colours = plt.cm.viridis([i / max(len(alphas) - 1, 1) for i in range(len(alphas))])
            for alpha, colour in zip(alphas, colours, strict=True):
                at: dict[int, float] = {}  # one point per words count (a milestone and ``final`` may coincide)
                for r in by_words:
                    if r["method"] == method and r["alpha"] == alpha:
                        at.setdefault(r["text_words"], r[task])
                points = sorted(at.items())
                axis.plot([p[0] for p in points], [p[1] for p in points], marker=".", color=colour, label=f"{alpha:g}")
            axis.set_xscale("log")
            axis.set_xlabel("words seen (text-only checkpoint)")
            axis.set_ylabel(f"{task} {metric} (x100)")
            axis.set_title(method, fontsize=9)
            axis.grid(alpha=0.3)
            axis.legend(title="alpha", fontsize=6, ncol=2)
        if note:
            figure.suptitle(note, fontsize=8)
        written.append(_save(figure, out_dir / f"{task}_vs_words.png"))
    return written


def write_report(records: list[dict[str, Any]], out_dir: str | os.PathLike, note: str = "") -> list[Path]:
    """Table and plots; returns the files written."""
    md, csv_path = write_table(records, out_dir)
    return [md, csv_path, *write_plots(records, Path(out_dir) / "plots", note)]
