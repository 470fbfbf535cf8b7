"""Scores across training seeds: one sweep store per seed, each cell's mean and spread over the seeds.

Cells are those of the sweep table (pair x method x alpha x task) and of the equal-word table (milestone x task x
side), matched across seeds by name (checkpoint names are milestones, the same in every seed). Each cell gets:

- ``mean``, ``sd`` (n-1), ``min``, ``max`` of the per-seed scores x100, and ``seeds``, their count;
- ``seed_low``, ``seed_high``: the 95% t-interval of the mean over seeds (``uncertainty.seed_interval``; none
  with one seed or when every seed gave the same value);
- ``item_low``, ``item_high``: the 95% interval over items of the pooled items, each item's value averaged over
  the seeds (the seeds score the same documents), so only item sampling is in it, not training noise.

The equal-word difference (text-only minus multimodal) pools the seeds the same way: the paired bootstrap
(``uncertainty.compare``) of the per-item means over seeds of both models, with its verdict (``pooled_verdict``);
``seed_verdict`` says the same from the t-interval of the per-seed differences. The pooled items' score is the
mean of the seeds' scores for every averaging task; for Wug (a Spearman correlation) it is the correlation of the
mean probabilities.
"""

from __future__ import annotations

import csv
import math
import os
import statistics
from pathlib import Path
from typing import Any

from ..evaluation.uncertainty import LEVEL, compare, interval, seed_interval, verdict
from ..io import atomic_file
from .items import SEED, decode
from .report import items_column, point_rows, primary_metric
from .store import PointKey
from .tasks import chance_level, limited_titles, title

SPREAD = ["seeds", "mean", "sd", "min", "max", "seed_low", "seed_high", "item_low", "item_high"]
SWEEP_FIELDS = ["pair", "method", "alpha", "task", "metric", *SPREAD]
EQUAL_FIELDS = ["milestone", "text_words", "multimodal_words", "task", "metric", "side", *SPREAD]
EQUAL_FIELDS += ["seed_verdict", "pooled_verdict"]
SIDES = (("text_only", 1.0), ("multimodal", 0.0))
NOTE = (
    "Each cell: mean over seeds x100 +- sd, then the 95% t-interval over seeds and the 95% interval over the "
    "items pooled across seeds (each item's value averaged over the seeds); min and max in the csv."
)

Records = list[dict[str, Any]]


def pooled_items(payloads: list[str]) -> list[Any] | None:
    """Each item's value averaged over the seeds' stored items; None when the seeds scored other documents."""
    decoded = [decode(p) for p in payloads]
    if len({len(items) for items in decoded}) != 1:
        return None
    pooled = []
    for items in zip(*decoded, strict=True):
        first = items[0]
        if not isinstance(first, (list, tuple)):
            pooled.append(statistics.fmean(items))
        elif len(first) == 2 and not isinstance(first[0], str):  # Wug: (model probability, human ratio)
            if any(item[1] != first[1] for item in items):
                return None
            pooled.append([statistics.fmean(item[0] for item in items), first[1]])
        else:
            if any(list(item[:-1]) != list(first[:-1]) for item in items):
                return None
            pooled.append([*first[:-1], statistics.fmean(item[-1] for item in items)])
    return pooled


def spread(values: list[float], payloads: list[str | None] | None = None) -> dict[str, Any]:
    """Mean, sd, min, max and the seed-level interval of per-seed scores x100; the item-level interval of the
    pooled items when every seed stored its items."""
    seeds = seed_interval(values, LEVEL)
    row = {"seeds": len(values), "mean": seeds.score, "sd": statistics.stdev(values) if len(values) > 1 else math.nan}
    row |= {"min": min(values), "max": max(values), "seed_low": seeds.low, "seed_high": seeds.high}
    pooled = pooled_items(payloads) if payloads and all(payloads) else None
    if pooled is not None:
        found = interval(pooled, LEVEL, seed=SEED)
        row |= {"item_low": 100 * found.low, "item_high": 100 * found.high}
    return row


def sweep_cells(stores: dict[int, Records]) -> list[dict[str, Any]]:
    """One row per (pair, method, alpha, task) scored in every seed's store."""
    cells: dict[tuple, dict[int, tuple[float, str | None]]] = {}
    metrics: dict[str, str | None] = {}
    for seed, records in stores.items():
        tasks, rows = point_rows(records)
        for row in rows:
            for task in tasks:
                if row.get(task) is not None:
                    metrics.setdefault(task, primary_metric(records, task))
                    key = (row["pair"], row["method"], row["alpha"], task)
                    cells.setdefault(key, {})[seed] = (row[task], row.get(items_column(task)))
    out = []
    for (pair, method, alpha, task), by_seed in cells.items():
        if len(by_seed) == len(stores):
            values, payloads = zip(*by_seed.values(), strict=True)
            cell = {"pair": pair, "method": method, "alpha": alpha, "task": task, "metric": metrics[task]}
            out.append(cell | spread(list(values), list(payloads)))
    return out


def equal_word_cells(stores: dict[int, Records]) -> list[dict[str, Any]]:
    """One row per (milestone, task, side) of the equal-word table scored in every seed: ``text_only``,
    ``multimodal`` and their ``difference``, with the pooled paired verdict on the difference."""
    from .equal_words import equal_word_rows

    cells: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for seed, records in stores.items():
        _, rows = point_rows(records)
        at = {(r["text"], r["multimodal"], r["method"], r["alpha"]): r for r in rows}
        for row in equal_word_rows(records)[1]:
            items = {side: at.get((row["text"], row["multimodal"], "linear", alpha)) for side, alpha in SIDES}
            payloads = {side: (r or {}).get(items_column(row["task"])) for side, r in items.items()}
            cells.setdefault((row["text"], row["task"]), {})[seed] = {"row": row, "items": payloads}
    out = []
    for (milestone, task), by_seed in cells.items():
        if len(by_seed) < len(stores):
            continue
        rows = [s["row"] for s in by_seed.values()]
        common = {
            "milestone": milestone,
            "text_words": round(statistics.fmean(r["text_words"] for r in rows)),
            "multimodal_words": round(statistics.fmean(r["multimodal_words"] for r in rows)),
            "task": task,
            "metric": rows[0]["metric"],
        }
        payloads = {side: [s["items"][side] for s in by_seed.values()] for side, _ in SIDES}
        for side, key in (("text_only", "text_only"), ("multimodal", "multimodal_score")):
            out.append(common | {"side": side} | spread([r[key] for r in rows], payloads[side]))
        difference = common | {"side": "difference"} | spread([r["difference"] for r in rows])
        if len(rows) > 1:
            difference["seed_verdict"] = seed_verdict([r["difference"] for r in rows])
        found = pooled_comparison(payloads["text_only"], payloads["multimodal"])
        if found is not None:
            difference |= {"item_low": 100 * found.low, "item_high": 100 * found.high, "pooled_verdict": found.verdict}
        out.append(difference)
    return sorted(out, key=lambda r: r["text_words"])


def seed_verdict(differences: list[float]) -> str:
    """The verdict of the t-interval of per-seed differences; seeds that all differ by the same amount have no
    spread to judge by, so they get no verdict (a zero-width interval is no evidence with two or three seeds)."""
    found = seed_interval(differences, LEVEL)
    return "no spread over seeds" if math.isnan(found.low) else verdict(found.low, found.high)


def pooled_comparison(a: list[str | None], b: list[str | None]):
    """Paired bootstrap of a against b on the per-item means over seeds; None without every seed's items."""
    if not all(a) or not all(b):
        return None
    pooled_a, pooled_b = pooled_items(a), pooled_items(b)
    if pooled_a is None or pooled_b is None:
        return None
    try:
        return compare(pooled_a, pooled_b, LEVEL, seed=SEED)
    except ValueError:
        return None


def select_by_mean(stores: dict[int, Records]) -> dict[str, str]:
    """The paper's rule over seeds: per role, the checkpoint name with the highest mean selection score over the
    seeds (names scored in every seed; ties go to the later checkpoint, as in ``selection.best_checkpoint``)."""
    scores: dict[tuple[str, str], dict[int, tuple[float, int]]] = {}
    for seed, records in stores.items():
        for r in records:
            scored = PointKey.of(r).scored_checkpoint()
            if scored is not None and r["metric"] == "acc":
                role, name = scored
                scores.setdefault(scored, {})[seed] = (r["value"], r.get(f"{role}_words") or 0)
    chosen = {}
    for role in dict.fromkeys(role for role, _ in scores):
        full = {name: s for (r, name), s in scores.items() if r == role and len(s) == len(stores)}
        ranked = sorted(full, key=lambda n: statistics.fmean(w for _, w in full[n].values()))
        means = {name: statistics.fmean(v for v, _ in full[name].values()) for name in ranked}
        if means:
            chosen[role] = max(reversed(ranked), key=means.__getitem__)
    return chosen


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    text = f"{row['mean']:.2f} +- {row['sd']:.2f}" if not math.isnan(row["sd"]) else f"{row['mean']:.2f}"
    if not math.isnan(row["seed_low"]):
        text += f", seeds [{row['seed_low']:.2f}, {row['seed_high']:.2f}]"
    if row.get("item_low") is not None:
        text += f", items [{row['item_low']:.2f}, {row['item_high']:.2f}]"
    return text


def markdown(sweep: list[dict[str, Any]], equal: list[dict[str, Any]], titles: dict[str, str] | None = None) -> str:
    """The sweep cells of ``pairs`` and the equal-word cells, as two markdown tables with their notes."""
    seeds = max((r["seeds"] for r in sweep + equal), default=0)
    lines = [f"Over {seeds} training seeds. {NOTE}", ""]
    if sweep:
        tasks = list(dict.fromkeys(r["task"] for r in sweep))
        cell = {(r["pair"], r["method"], r["alpha"], r["task"]): r for r in sweep}
        lines += ["| pair | method | alpha | " + " | ".join(title(t, titles) for t in tasks) + " |"]
        lines += ["|---|---|---|" + "---|" * len(tasks)]
        for pair, method, alpha in dict.fromkeys((r["pair"], r["method"], r["alpha"]) for r in sweep):
            cells = [_cell(cell.get((pair, method, alpha, t))) for t in tasks]
            lines.append(f"| {pair} | {method} | {alpha:g} | " + " | ".join(cells) + " |")
        lines.append("")
    if equal:
        lines += [
            "Text-only vs multimodal at equal words seen (mean words over seeds): each side, then text-only minus "
            "multimodal with the paired bootstrap over the pooled items and its verdict at 95% (pooled), and the "
            "verdict of the t-interval over seeds (seeds).",
            "",
            "| milestone | words | task | text-only | multimodal | difference | verdict (pooled / seeds) |",
            "|---|---|---|---|---|---|---|",
        ]
        by = {(r["milestone"], r["task"], r["side"]): r for r in equal}
        for milestone, task in dict.fromkeys((r["milestone"], r["task"]) for r in equal):
            text, multimodal, diff = (by[(milestone, task, side)] for side in ("text_only", "multimodal", "difference"))
            verdicts = f"{diff.get('pooled_verdict', 'no items')} / {diff.get('seed_verdict', 'one seed')}"
            words = f"{text['text_words']:,} / {text['multimodal_words']:,}"
            cells = [milestone, words, title(task, titles), _cell(text), _cell(multimodal), _cell(diff), verdicts]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_seed_report(
    stores: dict[int, Records],
    out_dir: str | os.PathLike,
    titles: dict[str, str] | None = None,
    pairs: list[str] | None = None,
    note: str = "",
) -> tuple[str, list[Path]]:
    """``seeds.md``, ``seeds_sweep.csv``, ``seeds_equal_words.csv`` and ``plots/seeds_equal_words.png`` (and
    ``plots/seeds_vs_alpha.png`` for ``pairs``, the merged pair's id) in ``out_dir``; returns the markdown too."""
    out_dir = Path(out_dir)
    sweep, equal = sweep_cells(stores), equal_word_cells(stores)
    titles = limited_titles(next(iter(stores.values())), titles)
    shown = [r for r in sweep if pairs is None or r["pair"] in pairs]
    text = markdown(shown, equal, titles)
    files = [out_dir / "seeds.md", out_dir / "seeds_sweep.csv", out_dir / "seeds_equal_words.csv"]
    with atomic_file(files[0]) as tmp:
        tmp.write_text("# Scores across training seeds (x100)\n\n" + text, encoding="utf-8")
    for path, rows, fields in ((files[1], sweep, SWEEP_FIELDS), (files[2], equal, EQUAL_FIELDS)):
        with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    if equal:
        files.append(plot_equal_words(equal, out_dir / "plots" / "seeds_equal_words.png", titles, note))
    if shown:
        files.append(plot_alpha(shown, out_dir / "plots" / "seeds_vs_alpha.png", titles))
    return text, files


def _panels(count: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(count, 3)
    figure, axes = plt.subplots(-(-count // columns), columns, figsize=(4.2 * columns, 3.2), squeeze=False)
    for axis in axes.flat[count:]:
        axis.set_visible(False)
    return figure, axes


def _accuracy_range(axis, task: str) -> None:
    """A choice task's axis kept within 0-100 (a t-interval over two seeds can reach far beyond)."""
    if chance_level(task) is not None:
        low, high = axis.get_ylim()
        axis.set_ylim(max(low, -2), min(high, 102))


def _label(axis, task: str, titles: dict[str, str] | None, xlabel: str) -> None:
    """A panel's title, axis labels, grid and y range (at least a few points, within 0..100 for accuracies)."""
    from .report import min_span

    axis.set_title(title(task, titles), fontsize=10)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("mean over seeds x100")
    axis.grid(alpha=0.3)
    min_span(axis)
    _accuracy_range(axis, task)


def plot_equal_words(rows: list[dict[str, Any]], path: Path, titles: dict[str, str] | None, note: str) -> Path:
    """Per task: both models' mean over seeds against words seen, the band of the 95% t-interval over seeds."""
    from .equal_words import SERIES
    from .report import band, note_on, save_figure, words_axis

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    figure, axes = _panels(len(tasks))
    for axis, task in zip(axes.flat, tasks, strict=False):
        for side, (_, colour, label) in zip(("text_only", "multimodal"), SERIES, strict=True):
            mine = sorted((r for r in rows if r["task"] == task and r["side"] == side), key=lambda r: r["text_words"])
            words = [r["text_words"] for r in mine]
            axis.plot(words, [r["mean"] for r in mine], marker="o", markersize=3, color=colour, label=label)
            band(axis, [(w, r["seed_low"], r["seed_high"]) for w, r in zip(words, mine, strict=True)], colour)
            axis.vlines(words, [r["min"] for r in mine], [r["max"] for r in mine], color=colour, linewidth=0.8)
        if (chance := chance_level(task)) is not None:
            axis.axhline(100 * chance, color="grey", linestyle="--", linewidth=1, label="chance")
        words_axis(axis, [r["text_words"] for r in rows if r["task"] == task])
        _label(axis, task, titles, "words seen (mean over seeds)")
        note_on(axis, note, task)
    axes.flat[0].legend(fontsize=8, title="band: 95% over seeds; bar: min-max", title_fontsize=7)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_alpha(rows: list[dict[str, Any]], path: Path, titles: dict[str, str] | None) -> Path:
    """Per task: each method's mean over seeds against alpha, with error bars of the 95% t-interval over seeds."""
    from .report import save_figure

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    figure, axes = _panels(len(tasks))
    for axis, task in zip(axes.flat, tasks, strict=False):
        for method in dict.fromkeys(r["method"] for r in rows):
            mine = sorted((r for r in rows if r["task"] == task and r["method"] == method), key=lambda r: r["alpha"])
            means = [r["mean"] for r in mine]
            error = [[m - r["seed_low"] for m, r in zip(means, mine, strict=True)]]
            error.append([r["seed_high"] - m for m, r in zip(means, mine, strict=True)])
            axis.errorbar([r["alpha"] for r in mine], means, yerr=error, marker="o", capsize=3, label=method)
        _label(axis, task, titles, "alpha (1: text-only, 0: multimodal)")
    axes.flat[0].legend(fontsize=8, title="bars: 95% over seeds", title_fontsize=7)
    figure.tight_layout()
    return save_figure(figure, path)
