"""The paper's comparison at equal words seen: the text-only and the multimodal checkpoint of every milestone,
on every task, as a table (markdown and CSV) and a figure.

Built from a sweep's store: the checkpoint-by-checkpoint (aligned) pairs' ``linear`` points at alpha 1 (the
text-only checkpoint's own weights) and alpha 0 (the multimodal checkpoint's), kept where both checkpoints
have seen the same number of words (a milestone is crossed inside a batch: within 5%). Where the store holds both
models' items, each milestone's difference gets its 95% paired interval and a verdict (``items.comparison_of``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from ..io import atomic_file
from .items import FIELD, comparison_of, interval_of, scaled, verdict_text
from .report import TIES, TIES_NOTE, primary_metric, requested_tasks, with_ties
from .tasks import chance_level, equal_words, limited_titles, title

SERIES = (("text_only", "tab:blue", "text-only"), ("multimodal_score", "tab:orange", "multimodal"))
FIELDS = ["words", "text", "multimodal", "text_words", "multimodal_words", "task", "metric"]
FIELDS += ["text_only", "multimodal_score", "difference", "limit"]
TIE_FIELDS = ["text_ties", "multimodal_ties"]  # tie fractions x100, where the store holds them
# 95% intervals x100 of each score and of the paired difference, McNemar's p and the verdict, where items are stored
INTERVAL_FIELDS = ["text_only_low", "text_only_high", "multimodal_low", "multimodal_high"]
INTERVAL_FIELDS += ["difference_low", "difference_high", "p_mcnemar", "verdict"]
PAIRED_NOTE = (
    "With items stored: each score's 95% interval, then text-only minus multimodal [95% paired bootstrap "
    "interval] and whether text-only is ahead, behind or not distinguishable at 95%."
)


def equal_word_rows(records: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Tasks, and one row per (milestone, task): both models' primary scores x100 at the same words seen."""
    tasks = requested_tasks(records)
    metrics = {task: primary_metric(records, task) for task in tasks}
    scores: dict[tuple[int, str, str], dict[float, float]] = {}
    ties: dict[tuple[int, str], dict[float, float]] = {}
    stored: dict[tuple[int, str], dict[float, str]] = {}  # encoded items by alpha
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
        if r.get(FIELD):
            stored.setdefault((words, r["task"]), {})[float(r["alpha"])] = r[FIELD]
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
            rows[-1].update(paired(stored.get((words, task), {})))
    return [t for t in tasks if any(r["task"] == t for r in rows)], rows


def paired(items: dict[float, str]) -> dict[str, Any]:
    """Interval fields of a milestone from both models' stored items (alpha 1: text-only, 0: multimodal)."""
    if 0.0 not in items or 1.0 not in items:
        return {}
    out = dict(zip(INTERVAL_FIELDS[:2], scaled(interval_of(items[1.0])), strict=True))
    out.update(zip(INTERVAL_FIELDS[2:4], scaled(interval_of(items[0.0])), strict=True))
    found = comparison_of(items[1.0], items[0.0])
    if found is not None:
        out.update(zip(INTERVAL_FIELDS[4:6], scaled(found), strict=True))
        out.update(p_mcnemar=found.p_mcnemar, verdict=found.verdict, comparison=verdict_text(found))
    return out


def markdown(records: list[dict[str, Any]], titles: dict[str, str] | None = None) -> str:
    """One row per milestone; per task the text-only and the multimodal score; a count of who leads."""
    tasks, rows = equal_word_rows(records)
    if not rows:
        return ""
    titles = limited_titles(records, titles)
    cell = {(r["words"], r["task"]): r for r in rows}
    head = ["words seen"] + [title(t, titles) for t in tasks]
    lines = ["Each cell: text-only / multimodal; words seen: text-only / multimodal checkpoint."]
    if any("verdict" in r for r in rows):
        lines += ["", PAIRED_NOTE]
    lines.append("")
    lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for words in sorted({r["words"] for r in rows}):
        pair = next(r for r in rows if r["words"] == words)
        cells = [f"{pair['text_words']:,} / {pair['multimodal_words']:,}"]
        cells += [_cell(cell.get((words, task))) for task in tasks]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for task in tasks:
        mine = [r for r in rows if r["task"] == task]
        ahead, behind = sum(r["difference"] > 0 for r in mine), sum(r["difference"] < 0 for r in mine)
        line = (
            f"- {title(task, titles)}: text-only ahead at {ahead}, multimodal ahead at {behind}, "
            f"equal at {len(mine) - ahead - behind} of {len(mine)} milestones"
        )
        tested = [r["verdict"] for r in mine if "verdict" in r]
        if tested:
            line += (
                f"; at 95% (paired, {len(tested)} milestones with items): text-only ahead at "
                f"{tested.count('ahead')}, multimodal ahead at {tested.count('behind')}, not distinguishable at "
                f"{tested.count('not distinguishable')}"
            )
        if len(tested) < len(mine):
            line += f"; {len(mine) - len(tested)} milestones have no items stored (no interval)"
        lines.append(line)
    if any(r.get(f) for r in rows for f in TIE_FIELDS):
        lines.append(f"- {TIES_NOTE}")
    return "\n".join(lines) + "\n"


def _cell(row: dict[str, Any] | None) -> str:
    """``text-only / multimodal`` scores, each with its tie fraction when some items tied."""
    if row is None:
        return ""
    text_only = with_ties(f"{row['text_only']:.2f}{_bounds(row, 'text_only')}", row.get("text_ties"))
    multimodal = with_ties(f"{row['multimodal_score']:.2f}{_bounds(row, 'multimodal')}", row.get("multimodal_ties"))
    paired_text = f"; {row['comparison']}" if row.get("comparison") else ""
    return f"{text_only} / {multimodal}{paired_text}"


def _bounds(row: dict[str, Any], prefix: str) -> str:
    low, high = row.get(f"{prefix}_low"), row.get(f"{prefix}_high")
    return "" if low is None else f" [{low:.2f}, {high:.2f}]"


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
        extra = [f for f in TIE_FIELDS + INTERVAL_FIELDS if any(f in r for r in rows)]
        writer = csv.DictWriter(handle, fieldnames=FIELDS + extra, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return [md, csv_path, plot(tasks, rows, out_dir / "plots" / "equal_words.png", titles, note)]


def plot(tasks: list[str], rows: list[dict[str, Any]], path: Path, titles: dict[str, str] | None, note: str) -> Path:
    """One panel per task: both models' scores against words seen, with the task's chance level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import band, min_span, save_figure, words_axis
    from .tasks import is_image_task

    columns = min(len(tasks), 3)
    lines = -(-len(tasks) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.2 * lines), squeeze=False)
    for axis in axes.flat[len(tasks) :]:
        axis.set_visible(False)
    for axis, task in zip(axes.flat, tasks, strict=False):
        mine = sorted((r for r in rows if r["task"] == task), key=lambda r: r["words"])
        words = [r["words"] for r in mine]
        for (key, colour, label), prefix in zip(SERIES, ("text_only", "multimodal"), strict=True):
            axis.plot(words, [r[key] for r in mine], marker="o", markersize=3, color=colour, label=label)
            low, high = f"{prefix}_low", f"{prefix}_high"
            band(axis, [(r["words"], r[low], r[high]) for r in mine if r.get(low) is not None], colour)
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
