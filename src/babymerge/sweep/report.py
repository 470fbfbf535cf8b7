"""Sweep results as a table (markdown and CSV) and PNG plots: each task's score against alpha, and against
words seen for each alpha (checkpoint-by-checkpoint merging)."""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..evaluation.controls import CHANGED, SAME, control_of, image_task_of
from ..io import atomic_file
from .items import FIELD, SEED, effect_of, interval_of, scaled, verdict_text
from .store import PointKey
from .tasks import chance_level, equal_words, is_image_task, limited_titles, title, words_label

PRIMARY = ("acc", "text_score", "spearman", "acc_norm")
TIES = "tie_fraction"  # share of items whose correct option tied exactly (BabyLM's ``acc`` counts them correct)
TIES_NOTE = (
    "(ties x%): share of items whose correct option scored exactly as high as another; the score counts them "
    "correct, as BabyLM does (acc_tie_neutral in the store scores a k-way tie 1/k)"
)


def primary_metric(records: list[dict[str, Any]], task: str) -> str | None:
    """The metric a task is ranked by: ``acc`` when present, else the first one it reports."""
    metrics = list(dict.fromkeys(r["metric"] for r in records if r["task"] == task))
    return next((m for m in PRIMARY if m in metrics), metrics[0] if metrics else None)


def requested_tasks(records: list[dict[str, Any]]) -> list[str]:
    """The tasks of the sweep's points; a no-image control is shown beside its image task, not as a task."""
    names = list(dict.fromkeys(r["task"] for r in records if r.get("alpha") is not None and "/" not in r["task"]))
    return [t for t in names if image_task_of(t) not in names]


def controls_of(tasks: list[str], records: list[dict[str, Any]]) -> dict[str, str]:
    """``{image task: its no-image control}`` for the controls some point of ``records`` scored."""
    scored = {r["task"] for r in records if r.get("alpha") is not None}
    return {t: c for t in tasks if (c := control_of(t)) in scored}


INTERVAL_NOTE = (
    "[low, high]: 95% interval over the task's items (exact binomial for a plain accuracy, else a bootstrap over "
    f"items within each paradigm, seed {SEED})"
)


def low_column(task: str) -> str:
    return f"{task}_low"


def high_column(task: str) -> str:
    return f"{task}_high"


def items_column(task: str) -> str:
    """The row key of a task's stored items (not written to the CSV)."""
    return f"{task} {FIELD}"


def effect_column(task: str) -> str:
    """The row key (and CSV column) of an image task's score minus its no-image control's, x100; ``_low`` and
    ``_high`` columns hold its 95% paired interval, ``<task>_image_verdict`` the verdict in words."""
    return f"{task}_image_minus_no_image"


def image_verdict_column(task: str) -> str:
    return f"{task}_image_verdict"


def effect_key(task: str) -> str:
    """The row key of the ``controls.ImageEffect`` itself (not written to the CSV)."""
    return f"{task} image_effect"


EFFECT_NOTE = (
    "image minus no image: the image task's score minus its no-image control's (babyllava: the black image's "
    "features in place of each item's; a stock LLaVA: no image) on the same items, x100, with its 95% paired "
    "bootstrap interval: "
    f'"{CHANGED}" when the interval excludes 0, else "{SAME}"; controls are scored at alpha 0 and 1 (the parents)'
)


def point_rows(records: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Wide rows, one per (pair, method, alpha), with each task's primary score x100, its 95% interval x100
    (``<task>_low``, ``<task>_high``) where the store holds its items; and the task names."""
    tasks = requested_tasks(records)
    controls = controls_of(tasks, records)
    metrics = {task: primary_metric(records, task) for task in [*tasks, *controls.values()]}
    rows: dict[tuple, dict[str, Any]] = {}
    ties: dict[tuple, float] = {}
    for r in records:
        if r.get("alpha") is not None and r["task"] in metrics and r["metric"] == TIES:
            ties[(PointKey.of(r).point, r["task"])] = 100.0 * r["value"]
        if r.get("alpha") is None or r["task"] not in metrics or r["metric"] != metrics[r["task"]]:
            continue
        row = rows.setdefault(
            PointKey.of(r).point,
            {
                "pair": r["pair"],
                "method": r["method"],
                "alpha": float(r["alpha"]),
                "text": r.get("text"),
                "multimodal": r.get("multimodal"),
                "text_words": r.get("text_words"),
                "multimodal_words": r.get("multimodal_words"),
                "limit": r.get("limit"),
            },
        )
        row[r["task"]] = 100.0 * r["value"]
        if r.get(FIELD):
            row[items_column(r["task"])] = r[FIELD]
            row[low_column(r["task"])], row[high_column(r["task"])] = scaled(interval_of(r[FIELD]))
    for (point, task), value in ties.items():
        if point in rows:
            rows[point][ties_column(task)] = value
    for row in rows.values():
        for task, control in controls.items():
            if row.get(items_column(task)) and row.get(items_column(control)):
                effect = effect_of(task, row[items_column(task)], row[items_column(control)])
                if effect is not None:
                    row[effect_key(task)], row[image_verdict_column(task)] = effect, effect.verdict
                    row[effect_column(task)] = 100 * effect.comparison.difference
                    row[low_column(effect_column(task))], row[high_column(effect_column(task))] = scaled(
                        effect.comparison
                    )
    ordered = sorted(rows.values(), key=lambda x: (x["text_words"] or 0, x["pair"], x["method"], x["alpha"]))
    return tasks, ordered


def ties_column(task: str) -> str:
    """The row key (and CSV column) of a task's tie fraction x100."""
    return f"{task} {TIES}"


def with_ties(score: str, ties: float | None) -> str:
    """``61.02 (ties 0.40%)`` when some items tied, else the score alone."""
    return f"{score} (ties {ties:.2f}%)" if ties else score


def score_cell(row: dict[str, Any], task: str) -> str:
    """``61.02 [60.10, 61.90]`` (score and 95% interval x100) with the tie marker; the score alone without items."""
    score = _fmt(row.get(task))
    if score and row.get(low_column(task)) is not None:
        score += f" [{row[low_column(task)]:.2f}, {row[high_column(task)]:.2f}]"
    return with_ties(score, row.get(ties_column(task)))


def interval_notes(tasks: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """What ``[low, high]`` means, and how many scores have no items stored (hence no interval)."""
    cells = [(row, t) for row in rows for t in tasks if row.get(t) is not None]
    without = sum(low_column(t) not in row for row, t in cells)
    notes = [INTERVAL_NOTE] if without < len(cells) else []
    if without:
        notes.append(
            f"{without} scores have no items stored (scored before items were kept, or a group's score): no interval"
        )
    return notes


def ties_notes(tasks: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """Footnotes: what a ``(ties x%)`` marker means, and how many choice-task scores have no tie fraction stored
    (scored before ties were counted: unknown, not zero)."""
    notes = [TIES_NOTE] if any(row.get(ties_column(t)) for row in rows for t in tasks) else []
    choice = [t for t in tasks if (chance_level(t) or 0) > 0]
    unknown = sum(row.get(t) is not None and ties_column(t) not in row for row in rows for t in choice)
    if unknown:
        notes.append(f"{unknown} scores have no tie fraction stored (scored before ties were counted): ties unknown")
    return notes


def columns(tasks: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """The table's score columns: each task, and after an image task whose control was scored, the control and
    the image's effect (:func:`effect_column`)."""
    out = []
    for task in tasks:
        out.append(task)
        control = control_of(task)
        if control is not None and any(row.get(control) is not None for row in rows):
            out.append(control)
            if any(effect_column(task) in row for row in rows):
                out.append(effect_column(task))
    return out


def effect_cell(row: dict[str, Any], task: str) -> str:
    """``+1.20 [+0.40, +2.00] the image changed the model's choices`` (x100), blank where no control was scored."""
    effect = row.get(effect_key(task))
    return "" if effect is None else verdict_text(effect.comparison, effect.verdict)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def markdown_table(records: list[dict[str, Any]], titles: dict[str, str] | None = None) -> str:
    tasks, rows = point_rows(records)
    titles = limited_titles(records, titles)
    shown = columns(tasks, rows)
    effects = {effect_column(t): t for t in tasks}
    labels = [
        f"{title(effects[c], titles)}: image minus no image (x100)"
        if c in effects
        else f"{title(c, titles)} ({primary_metric(records, c)} x100)"
        for c in shown
    ]
    lines = ["| pair | method | alpha | " + " | ".join(labels) + " |", "|---|---|---|" + "---|" * len(shown)]
    for row in rows:
        cells = [row["pair"], row["method"], f"{row['alpha']:g}"]
        cells += [effect_cell(row, effects[c]) if c in effects else score_cell(row, c) for c in shown]
        lines.append("| " + " | ".join(cells) + " |")
    scored = [c for c in shown if c not in effects]
    notes = interval_notes(scored, rows) + ties_notes(scored, rows)
    notes += [EFFECT_NOTE] if len(scored) < len(shown) else []
    return "\n".join(lines + [""] * bool(notes) + [f"- {note}" for note in notes]) + "\n"


def write_table(
    records: list[dict[str, Any]], out_dir: str | os.PathLike, titles: dict[str, str] | None = None
) -> tuple[Path, Path]:
    """``sweep_table.md`` (with the selection rule's remarks) and ``sweep_table.csv`` in ``out_dir``."""
    from .selection import selection_remarks

    out_dir = Path(out_dir)
    tasks, rows = point_rows(records)
    md, csv_path = out_dir / "sweep_table.md", out_dir / "sweep_table.csv"
    remarks = "".join(f"\n- selection rule: {line}" for line in selection_remarks(records))
    with atomic_file(md) as tmp:
        tmp.write_text(markdown_table(records, titles) + (remarks and remarks + "\n"), encoding="utf-8")
    shown = columns(tasks, rows)
    fields = ["pair", "method", "alpha", "text", "multimodal", "text_words", "multimodal_words", "limit", *shown]
    with atomic_file(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        fields += [c for t in shown for c in (low_column(t), high_column(t)) if any(c in row for row in rows)]
        fields += [image_verdict_column(t) for t in tasks if effect_column(t) in shown]
        fields += [ties_column(t) for t in shown if any(ties_column(t) in row for row in rows)]
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return md, csv_path


def save_figure(figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def pair_label(row: dict[str, Any]) -> str:
    """Words seen by each side of a pair: ``text-only 1.6M / multimodal 150k words`` (one figure when equal)."""
    text, multimodal = row.get("text_words"), row.get("multimodal_words")
    if text is not None and text == multimodal:
        return f"both at {words_label(text)} words"
    return f"text-only {words_label(text)} / multimodal {words_label(multimodal)} words"


def words_axis(axis, words: list[int] | None = None) -> None:
    """A log axis of words seen, its ticks written as 150k, 1.6M: at the checkpoints' word counts when given
    (thinned to about eight, evenly apart on the log axis), else at powers of ten."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    axis.set_xscale("log")
    values = sorted({w for w in words or [] if w > 0})
    gap = max((values[-1] / values[0]) ** (1 / 8), 1.1) if values else 1.0
    ticks: list[int] = []
    for value in values:
        if not ticks or value >= gap * ticks[-1]:
            ticks.append(value)
    if len(ticks) >= 2:
        axis.xaxis.set_major_locator(FixedLocator(ticks))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: words_label(int(round(value)))))
    axis.xaxis.set_minor_formatter(NullFormatter())


def min_span(axis, span: float = 20.0) -> None:
    """Widen the y range to at least ``span`` points, so that noise of a point or two does not look like a trend."""
    low, high = axis.get_ylim()
    if high - low < span:
        middle = (low + high) / 2
        axis.set_ylim(middle - span / 2, middle + span / 2)


def note_on(axis, note: str, task: str) -> None:
    """``note`` in the panel's lower left corner, on image tasks only."""
    if note and is_image_task(task):
        axis.text(0.02, 0.02, note, transform=axis.transAxes, fontsize=7, color="dimgray")


def label_scores(axes, metric: str | None) -> None:
    """The shared y axis of a row of panels: its metric, and a range of at least 20 points."""
    axes[0][0].set_ylabel(f"{metric} x100")
    min_span(axes[0][0])


@dataclass
class PairStyles:
    """How pairs are drawn: ``selected`` ones bold, checkpoint-by-checkpoint (``aligned``) ones thin, coloured by
    words seen (``norm``)."""

    first_row: dict[str, dict[str, Any]]
    aligned: list[str]
    selected: list[str]
    words: list[int]
    norm: Any = None

    @classmethod
    def of(cls, rows: list[dict[str, Any]], selected: list[str] | None) -> PairStyles:
        """``selected`` default: the pairs that are not checkpoint by checkpoint (those need two or more)."""
        from matplotlib.colors import LogNorm

        first_row: dict[str, dict[str, Any]] = {}
        for r in rows:
            first_row.setdefault(r["pair"], r)
        aligned = sorted(
            (p for p, r in first_row.items() if equal_words(r.get("text_words"), r.get("multimodal_words"))),
            key=lambda p: first_row[p]["text_words"],
        )
        aligned = aligned if len(aligned) >= 2 else []
        selected = selected or [p for p in first_row if p not in aligned]
        aligned = [p for p in aligned if p not in selected]
        words = [first_row[p]["text_words"] for p in aligned]
        norm = LogNorm(min(words), max(words)) if aligned and max(words) > min(words) else None
        return cls(first_row, aligned, selected, words, norm)


def band(axis, points: list[tuple[float, float, float]], colour: Any) -> bool:
    """A shaded 95% band through ``(x, low, high)`` points; False when there are none."""
    if not points:
        return False
    x, low, high = zip(*sorted(points), strict=True)
    axis.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
    return True


def alpha_figure(
    task: str, records: list[dict[str, Any]], rows: list[dict[str, Any]], styles: PairStyles, note: str, name: str
):
    """``<task>_vs_alpha.png``: one panel per method, the task's score against alpha for each pair."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, NullFormatter

    methods = list(dict.fromkeys(r["method"] for r in rows))
    chance = chance_level(task)
    series: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    bands: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    for r in rows:
        if r.get(task) is not None:
            series[(r["pair"], r["method"])].append((r["alpha"], r[task]))
        if r.get(low_column(task)) is not None:
            bands[(r["pair"], r["method"])].append((r["alpha"], r[low_column(task)], r[high_column(task)]))
    figure, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.6), squeeze=False, sharey=True)
    handles: dict[str, Any] = {}
    bold = ["black", "tab:red", "tab:purple", "tab:brown"]
    for axis, method in zip(axes[0], methods, strict=True):
        for pair in styles.aligned:
            points = sorted(series.get((pair, method), []))
            if points and styles.norm is not None:
                colour = plt.cm.viridis(0.9 * styles.norm(styles.first_row[pair]["text_words"]))
                axis.plot([p[0] for p in points], [p[1] for p in points], color=colour, linewidth=1, alpha=0.8)
        for i, pair in enumerate(styles.selected):
            points = sorted(series.get((pair, method), []))
            if points:
                (line,) = axis.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    color=bold[i % len(bold)],
                    linewidth=2.2,
                    marker="o",
                    markersize=3,
                )
                handles.setdefault(f"merged pair: {pair_label(styles.first_row[pair])}", line)
                if band(axis, bands.get((pair, method), []), bold[i % len(bold)]):
                    handles.setdefault("95% interval over items", Patch(color="grey", alpha=0.2))
        if chance is not None:
            handles["chance"] = axis.axhline(100 * chance, color="grey", linestyle="--", linewidth=1)
        axis.set_title(method.replace("_", " "), fontsize=10)
        axis.set_xlabel("alpha  (0 = multimodal, 1 = text-only)")
        axis.set_xlim(-0.03, 1.03)
        axis.grid(alpha=0.3)
        note_on(axis, note, task)
    label_scores(axes, primary_metric(records, task))
    if styles.aligned and styles.norm is not None:
        words = styles.words
        handles["checkpoint-by-checkpoint pairs (colour: words seen)"] = Line2D([], [], color=plt.cm.viridis(0.5))
        bar = figure.colorbar(plt.cm.ScalarMappable(norm=styles.norm, cmap="viridis"), ax=list(axes[0]), pad=0.01)
        bar.set_label("words seen (both models)")
        ticks = words[:: max(len(words) // 5, 1)]
        bar.set_ticks(ticks if ticks[-1] == words[-1] else [*ticks, words[-1]])
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: words_label(int(round(value)))))
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
    figure.suptitle(name, fontsize=11)
    figure.legend(
        list(handles.values()),
        list(handles),
        loc="lower center",
        ncol=2,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, -0.12),
    )
    return figure


def words_figure(task: str, records: list[dict[str, Any]], rows: list[dict[str, Any]], note: str, name: str):
    """``<task>_vs_words.png``: for each method merged at two or more equal word counts, the task's score against
    words seen, one line per alpha; None when no method was."""
    import matplotlib.pyplot as plt

    by_words = [r for r in rows if r.get(task) is not None and equal_words(r["text_words"], r["multimodal_words"])]
    counts = defaultdict(set)
    for r in by_words:
        counts[r["method"]].add(r["text_words"])
    methods = [m for m in dict.fromkeys(r["method"] for r in by_words) if len(counts[m]) >= 2]
    if not methods:
        return None
    chance = chance_level(task)
    figure, axes = plt.subplots(1, len(methods), figsize=(4.8 * len(methods), 3.6), squeeze=False, sharey=True)
    for axis, method in zip(axes[0], methods, strict=True):
        alphas = sorted({r["alpha"] for r in by_words if r["method"] == method})
        colours = plt.cm.coolwarm([i / max(len(alphas) - 1, 1) for i in range(len(alphas))])
        for alpha, colour in zip(alphas, colours, strict=True):
            at: dict[int, dict] = {}  # one point per words count (a milestone and ``final`` may coincide)
            for r in by_words:
                if r["method"] == method and r["alpha"] == alpha:
                    at.setdefault(r["text_words"], r)
            points = sorted(at.items())
            label = {0.0: "0 (multimodal)", 1.0: "1 (text-only)"}.get(alpha, f"{alpha:g} (merged)")
            axis.plot([p[0] for p in points], [p[1][task] for p in points], marker=".", color=colour, label=label)
            low, high = low_column(task), high_column(task)
            band(axis, [(w, r[low], r[high]) for w, r in points if r.get(low) is not None], colour)
        if chance is not None:
            axis.axhline(100 * chance, color="grey", linestyle="--", linewidth=1, label="chance")
        words_axis(axis, [r["text_words"] for r in by_words])
        axis.set_xlabel("words seen (both models)")
        axis.set_title(method.replace("_", " "), fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(title="alpha", fontsize=7)
        note_on(axis, note, task)
    label_scores(axes, primary_metric(records, task))
    figure.suptitle(f"{name}: merging checkpoint by checkpoint, at equal words", fontsize=11)
    return figure


def write_plots(
    records: list[dict[str, Any]],
    out_dir: str | os.PathLike,
    note: str = "",
    titles: dict[str, str] | None = None,
    selected: list[str] | None = None,
) -> list[Path]:
    """``<task>_vs_alpha.png`` for every task (one panel per method, one y range), and ``<task>_vs_words.png``
    when several checkpoint-by-checkpoint pairs were swept. ``selected`` pairs (default: those that are not
    checkpoint by checkpoint) are drawn bold; ``note`` is written on image tasks only."""
    import matplotlib

    matplotlib.use("Agg")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks, rows = point_rows(records)
    titles = limited_titles(records, titles)
    styles = PairStyles.of(rows, selected)
    written = []
    for task in tasks:
        name = title(task, titles)
        figure = alpha_figure(task, records, rows, styles, note, name)
        written.append(save_figure(figure, out_dir / f"{task}_vs_alpha.png"))
        if (figure := words_figure(task, records, rows, note, name)) is not None:
            written.append(save_figure(figure, out_dir / f"{task}_vs_words.png"))
    return written


def write_report(
    records: list[dict[str, Any]],
    out_dir: str | os.PathLike,
    note: str = "",
    titles: dict[str, str] | None = None,
    selected: list[str] | None = None,
) -> list[Path]:
    """Table, paired comparisons, the equal-word comparison, and plots; returns the files written."""
    from .comparisons import write_comparisons
    from .equal_words import write_equal_words

    md, csv_path = write_table(records, out_dir, titles)
    plots = write_plots(records, Path(out_dir) / "plots", note, titles, selected)
    compared = write_comparisons(records, out_dir, titles)
    return [md, csv_path, *compared, *write_equal_words(records, out_dir, titles, note), *plots]
