"""Paired comparisons of a sweep on the same items: each merge against each parent, and each method's best alpha
against its alpha 0 and alpha 1, per task (``comparisons.md`` and ``comparisons.csv``).

A pair's parents are its ``linear`` points at alpha 1 (the text-only checkpoint's own weights) and alpha 0 (the
multimodal checkpoint's). Each comparison is the difference x100 with its 95% paired-bootstrap interval, McNemar's
exact p for 0/1 items, and a verdict: ahead, behind or not distinguishable (``evaluation.uncertainty.compare``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from ..io import atomic_file
from .items import comparison_of, verdict_text
from .report import effect_key, items_column, point_rows
from .tasks import limited_titles, title

FIELDS = ["pair", "method", "alpha", "task", "against", "difference", "low", "high", "p_mcnemar", "verdict"]
PARENTS = (("text-only parent", 1.0), ("multimodal parent", 0.0))
CONTROL = "no-image control"  # an image task's score against its control's at the same point (``controls.py``)
NOTE = (
    "Each cell: a minus b x100 [95% paired bootstrap interval] and the verdict at 95%: ahead or behind when the "
    "interval excludes 0, else not distinguishable (McNemar's exact p for accuracies in comparisons.csv); against "
    "the no-image control (alpha 0 and 1): the image changed the model's choices when the interval excludes 0, "
    "else not distinguishable from its no-image control"
)


def comparison_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per comparison: every merge point against each parent, each method's best alpha against its
    alpha 0 and alpha 1, per task; ``verdict`` is ``no items stored`` when either side lacks items. An image task
    scored with its no-image control at a point is also compared with it (``against`` :data:`CONTROL`, the verdict
    in ``controls.ImageEffect``'s words)."""
    tasks, rows = point_rows(records)
    at = {(r["pair"], r["method"], r["alpha"]): r for r in rows}
    out = []
    for task in tasks:
        for r in rows:
            if r.get(task) is None or (r["method"] == "linear" and r["alpha"] in (0.0, 1.0)):
                continue
            for against, alpha in PARENTS:
                parent = at.get((r["pair"], "linear", alpha))
                if parent is not None and parent.get(task) is not None:
                    out.append(_compared(r, parent, task, against))
        for pair, method in dict.fromkeys((r["pair"], r["method"]) for r in rows):
            scored = [r for r in rows if (r["pair"], r["method"]) == (pair, method) and r.get(task) is not None]
            if len(scored) < 2:
                continue
            best = max(scored, key=lambda r: r[task])
            for alpha in (0.0, 1.0):
                end = at.get((pair, method, alpha))
                if end is not None and end is not best and end.get(task) is not None:
                    out.append(_compared(best, end, task, f"alpha {alpha:g} (best alpha {best['alpha']:g})"))
        out += [_against_control(r, task) for r in rows if effect_key(task) in r]
    return out


def _against_control(row: dict[str, Any], task: str) -> dict[str, Any]:
    effect = row[effect_key(task)]
    c = effect.comparison
    return {"pair": row["pair"], "method": row["method"], "alpha": row["alpha"], "task": task, "against": CONTROL,
            "difference": 100 * c.difference, "low": 100 * c.low, "high": 100 * c.high, "p_mcnemar": c.p_mcnemar,
            "verdict": effect.verdict, "text": verdict_text(c, effect.verdict)}  # fmt: skip


def _compared(a: dict[str, Any], b: dict[str, Any], task: str, against: str) -> dict[str, Any]:
    row = {"pair": a["pair"], "method": a["method"], "alpha": a["alpha"], "task": task, "against": against}
    row["difference"] = a[task] - b[task]
    found = None
    if a.get(items_column(task)) and b.get(items_column(task)):
        found = comparison_of(a[items_column(task)], b[items_column(task)])
    if found is None:
        return {**row, "verdict": "no items stored"}
    return {**row, "low": 100 * found.low, "high": 100 * found.high, "p_mcnemar": found.p_mcnemar,
            "verdict": found.verdict, "text": verdict_text(found)}  # fmt: skip


def markdown(
    records: list[dict[str, Any]], titles: dict[str, str] | None = None, rows: list[dict[str, Any]] | None = None
) -> str:
    """The comparisons as a markdown table (``rows``: :func:`comparison_rows` of ``records``, if already made)."""
    rows = comparison_rows(records) if rows is None else rows
    if not rows:
        return ""
    titles = limited_titles(records, titles)
    lines = ["# Paired comparisons on the same items (x100)", "", NOTE, ""]
    lines += ["| task | pair | method | alpha | against | a - b [95%] verdict |", "|---|---|---|---|---|---|"]
    for r in rows:
        text = r.get("text") or f"{r['difference']:+.2f}, no items stored"
        cells = [title(r["task"], titles), r["pair"], r["method"], f"{r['alpha']:g}", r["against"], text]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_comparisons(
    records: list[dict[str, Any]], out_dir: str | os.PathLike, titles: dict[str, str] | None = None
) -> list[Path]:
    """``comparisons.md`` and ``comparisons.csv`` in ``out_dir`` (none when nothing is compared)."""
    rows = comparison_rows(records)
    text = markdown(records, titles, rows)
    if not text:
        return []
    out_dir = Path(out_dir)
    md, csv_path = out_dir / "comparisons.md", out_dir / "comparisons.csv"
    with atomic_file(md) as tmp:
        tmp.write_text(text, encoding="utf-8")
    with atomic_file(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return [md, csv_path]
