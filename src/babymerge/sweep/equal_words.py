"""The paper's comparison at equal words seen: the text-only and the multimodal checkpoint of every milestone,
on every task, as a table (markdown and CSV) and a figure.

Built from a sweep's store: the checkpoint-by-checkpoint (aligned) pairs' ``linear`` points at alpha 1 (the
text-only checkpoint's own weights) and alpha 0 (the multimodal checkpoint's), kept where both checkpoints
have seen the same number of words (a milestone is crossed inside a batch: within 5%).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from ..io import atomic_file
from .report import TIES, TIES_NOTE, primary_metric, requested_tasks, with_ties
from .tasks import chance_level, equal_words, limited_titles, title

SERIES = (("text_only", "tab:blue", "text-only"), ("multimodal_score", "tab:orange", "multimodal"))
FIELDS = ["words", "text", "multimodal", "text_words", "multimodal_words", "task", "metric"]
FIELDS += ["text_only", "multimodal_score", "difference", "limit"]
TIE_FIELDS = ["text_ties", "multimodal_ties"]  # tie fractions x100, where the store holds them


def equal_word_rows(records: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Tasks, and one row per (milestone, task): both models' primary scores x100 at the same words seen."""
    tasks = requested_tasks(records)
    metrics = {task: primary_metric(records, task) for task in tasks}
    scores: dict[tuple[int, str, str], dict[float, float]] = {}
    ties: dict[tuple[int, str], dict[float, float]] = {}
    limits = None  # documents per task (one for the whole grid: it is part of every result's key)
    pairs: dict[int, dict[str, Any]] = {}
    for r in records:
        words = r.get("text_words")
        if r.get("method") != "linear" or r.get("alpha") is None or float(r["alpha"]) not in (0.0, 1.0):
            continue
        if not equal_words(words, r.get("multimodal_words")):
            continue
        if r["metric"] == TIES:
            ties.setdefault((words, r["task"]), {})[float(r["alpha"])] = 100.0 * r["value"]
        if metrics.get(r["task"]) != r["metric"]:
            continue
        scores.setdefault((words, r["task"], r["metric"]), {})[float(r["alpha"])] = 100.0 * r["value"]
        pairs.setdefault(words, {k: r[k] for k in ("text", "multimodal", "text_words", "multimodal_words")})
        limits = limits or r.get("limit")
    rows = []
    for (words, task, metric), by_alpha in sorted(scores.items(), key=lambda kv: (kv[0][0], tasks.index(kv[0][1]))):
        if 0.0 in by_alpha and 1.0 in by_alpha:
            text_only, multimodal = by_alpha[1.0], by_alpha[0.0]
            rows.append(
                {
                    "words": words,
                    **pairs[words],
                    "task": task,
                    "metric": metric,
                    "text_only": text_only,
                    "multimodal_score": multimodal,
                    "difference": text_only - multimodal,
                    "limit": limits,
                }
            )
            tied = ties.get((words, task), {})
            rows[-1].update({f: tied[a] for f, a in zip(TIE_FIELDS, (1.0, 0.0), strict=True) if a in tied})
    return [t for t in tasks if any(r["task"] == t for r in rows)], rows


def markdown(records: list[dict[str, Any]], titles: dict[str, str] | None = None) -> str:
    """One row per milestone; per task the text-only and the multimodal score; a count of who leads."""
    tasks, rows = equal_word_rows(records)
    if not rows:
        return ""
    titles = limited_titles(records, titles)
    cell = {(r["words"], r["task"]): r for r in rows}
    head = ["words seen"] + [title(t, titles) for t in tasks]
    lines = ["Each cell: text-only / multimodal; words seen: text-only / multimodal checkpoint.", ""]
    lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for words in sorted({r["words"] for r in rows}):
        pair = next(r for r in rows if r["words"] == words)
        cells = [f"{pair['text_words']:,} / {pair['multimodal_words']:,}"]
        cells += [_cell(cell.get((words, task))) for task in tasks]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for task in tasks:
        diffs = [r["difference"] for r in rows if r["task"] == task]
        ahead, behind = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
        lines.append(
            f"- {title(task, titles)}: text-only ahead at {ahead}, multimodal ahead at {behind}, "
            f"equal at {len(diffs) - ahead - behind} of {len(diffs)} milestones"
        )
    if any(r.get(f) for r in rows for f in TIE_FIELDS):
        lines.append(f"- {TIES_NOTE}")
    return "\n".join(lines) + "\n"


def _cell(row: dict[str, Any] | None) -> str:
    """``text-only / multimodal`` scores, each with its tie fraction when some items tied."""
    if row is None:
        return ""
    text_only = with_ties(f"{row['text_only']:.2f}", row.get("text_ties"))
    multimodal = with_ties(f"{row['multimodal_score']:.2f}", row.get("multimodal_ties"))
    return f"{text_only} / {multimodal}"


def write_equal_words(
    records: list[dict[str, Any]],
    out_dir: str | os.PathLike,
    titles: dict[str, str] | None = None,
    note: str = "",
) -> list[Path]:
    """``equal_words.md``, ``equal_words.csv`` and ``plots/equal_words.png`` in ``out_dir`` (none without rows)."""
    out_dir = Path(out_dir)
    tasks, rows = equal_word_rows(records)
    if not rows:
        return []
    titles = limited_titles(records, titles)
    md, csv_path = out_dir / "equal_words.md", out_dir / "equal_words.csv"
    with atomic_file(md) as tmp:
        tmp.write_text("# Text-only vs multimodal at equal words seen (x100)\n\n" + markdown(records, titles))
    with atomic_file(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS + [f for f in TIE_FIELDS if any(f in r for r in rows)])
        writer.writeheader()
        writer.writerows(rows)
    return [md, csv_path, plot(tasks, rows, out_dir / "plots" / "equal_words.png", titles, note)]


def plot(tasks: list[str], rows: list[dict[str, Any]], path: Path, titles: dict[str, str] | None, note: str) -> Path:
    """One panel per task: both models' scores against words seen, with the task's chance level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import min_span, save_figure, words_axis
    from .tasks import is_image_task

    columns = min(len(tasks), 3)
    lines = -(-len(tasks) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.2 * lines), squeeze=False)
    for axis in axes.flat[len(tasks) :]:
        axis.set_visible(False)
    for axis, task in zip(axes.flat, tasks, strict=False):
        mine = sorted((r for r in rows if r["task"] == task), key=lambda r: r["words"])
        words = [r["words"] for r in mine]
        for key, colour, label in SERIES:
            axis.plot(words, [r[key] for r in mine], marker="o", markersize=3, color=colour, label=label)
        chance = chance_level(task)
        if chance is not None:
            axis.axhline(100 * chance, color="grey", linestyle="--", linewidth=1, label="chance")
        words_axis(axis, words)
        axis.set_title(title(task, titles), fontsize=10)
        axis.set_xlabel("words seen")
        axis.set_ylabel(f"{mine[0]['metric']} x100")
        axis.grid(alpha=0.3)
        min_span(axis)
        if note and is_image_task(task):
            axis.text(0.02, 0.02, note, transform=axis.transAxes, fontsize=7, color="dimgray")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", ncol=3, bbox_to_anchor=(0.5, 1.0), fontsize=9, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 0.94))
    return save_figure(figure, path)
