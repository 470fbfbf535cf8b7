"""The sweep's diagnostics: ``babymerge diagnose`` on every pair a sweep merges, and one summary beside the sweep
table, so that a merge's score can be read next to its pair's barrier.

Each pair gets diagnose's own folder, ``OUT/diagnostics/<pair>/`` (made by :func:`.run.diagnose`, at the sweep's
alphas; a pair whose folder exists is kept, so a rerun resumes), and ``OUT/diagnostics.md`` / ``.csv`` hold one row
per pair: words seen, the barrier on held-out text and captions, the whole model's task-vector cosine, sign-conflict
fraction and parent distance, and each task's best merge score in the sweep (``0 < alpha < 1``) with where it is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import BabymergeError
from ..io import atomic_file
from ..sweep.config import SweepConfig
from ..sweep.grid import Pair, pair_id
from ..sweep.slot import process_device
from ..sweep.tasks import title
from .config import DiagnoseConfig
from .report import write_csv
from .weights import ALL

FOLDER, SUMMARY = "diagnostics", "diagnostics"  # OUT/diagnostics/<pair>/ and OUT/diagnostics.{md,csv}
FIELDS = [
    "pair",
    "text",
    "multimodal",
    "text_words",
    "multimodal_words",
    "barrier_text",
    "barrier_captions",
    "cosine",
    "sign_conflict",
    "distance",
]


def check_held_out(config: SweepConfig) -> None:
    """Before the sweep starts: the diagnostics' held-out files exist (one line naming the field and the path)."""
    if not config.diagnose:
        return
    for field in ("diagnose_text", "diagnose_captions", "diagnose_features"):
        path = getattr(config, field)
        if path is not None and not Path(path).exists():
            raise BabymergeError(f"{field}: {path} not found")


def pair_config(config: SweepConfig, pair: Pair, out: Path, progress: bool = True) -> DiagnoseConfig:
    """The ``babymerge diagnose`` settings of one pair of the sweep: its held-out data and diagnose's defaults,
    at the sweep's alphas, on its device."""
    text, multimodal = pair
    return DiagnoseConfig(
        text_model=text.path,
        multimodal_model=multimodal.path,
        base=config.base,
        out=out,
        text=config.diagnose_text,
        captions=config.diagnose_captions,
        features=config.diagnose_features,
        alphas=config.alphas,
        max_tokens=config.diagnose_max_tokens,
        max_length=config.diagnose_max_length,
        device=process_device(config.device),
        progress=progress,
    )


def diagnose_pairs(config: SweepConfig, pairs: list[Pair], out_dir: Path, progress: bool = True) -> dict[str, Path]:
    """Diagnose every pair lacking its folder under ``out_dir/diagnostics``; returns each pair's folder."""
    from .run import diagnose

    folders = {}
    for pair in dict.fromkeys(pairs):
        folder = out_dir / FOLDER / pair_id(pair)
        if not folder.exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            diagnose(pair_config(config, pair, folder, progress))
        folders[pair_id(pair)] = folder
    return folders


def best_merges(records: list[dict[str, Any]]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The tasks, and per pair each task's best merge score x100 (``0 < alpha < 1``) with its method and alpha."""
    from ..sweep.report import point_rows

    tasks, rows = point_rows(records)
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not 0.0 < row["alpha"] < 1.0:
            continue
        cells = best.setdefault(row["pair"], {})
        for task in tasks:
            value, column = row.get(task), f"best {task}"
            if value is not None and (cells.get(column) is None or value > cells[column]):
                cells[column], cells[f"{column} at"] = value, f"{row['method']} {row['alpha']:g}"
    return tasks, best


def summary_rows(pairs: list[Pair], folders: dict[str, Path], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per pair: words seen, barriers, whole-model weight statistics and best merge scores."""
    _, best = best_merges(records)
    rows = []
    for pair in dict.fromkeys(pairs):
        name = pair_id(pair)
        result = json.loads((folders[name] / "diagnose.json").read_text(encoding="utf-8"))
        whole = next(r for r in result["weights"] if r["layer"] == ALL and r["group"] == ALL)
        loss = result["loss"]
        row = {
            "pair": name,
            "text": pair[0].name,
            "multimodal": pair[1].name,
            "text_words": pair[0].words,
            "multimodal_words": pair[1].words,
            "barrier_text": loss["text"]["barrier"] if "text" in loss else None,
            "barrier_captions": loss["captions"]["barrier"] if "captions" in loss else None,
            **{key: whole[key] for key in ("cosine", "sign_conflict", "distance")},
        }
        rows.append(row | best.get(name, {}))
    return rows


def _cell(value: Any, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(rows: list[dict[str, Any]], tasks: list[str]) -> str:
    """The summary table, each pair linked to its diagnose report."""
    head = ["pair", "words (text / multimodal)", "barrier text", "barrier captions", "cosine", "sign conflict"]
    head += ["distance", *(f"best {title(task)}" for task in tasks)]
    lines = [
        "# Diagnostics of the sweep's pairs",
        "",
        "Barrier: the largest excess of the interpolated model's held-out loss (nats per token) over the straight",
        "line between the parents' losses, at the sweep's alphas (0 and 1 added); cosine, sign conflict and",
        "distance: the task vectors (each parent minus the base) over the whole model. Best: each task's best merge",
        "score x100 over the sweep's methods at 0 < alpha < 1, with the method and alpha. How to read them:",
        "docs/diagnose.md.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in rows:
        words = f"{_cell(row['text_words'], 0)} / {_cell(row['multimodal_words'], 0)}"
        cells = [f"[{row['pair']}]({FOLDER}/{row['pair']}/diagnose.md)", words]
        cells += [_cell(row[key], 4) for key in ("barrier_text", "barrier_captions", "cosine", "sign_conflict")]
        cells.append(_cell(row["distance"], 3))
        for task in tasks:
            score = row.get(f"best {task}")
            cells.append("n/a" if score is None else f"{score:.2f} ({row[f'best {task} at']})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_diagnostics(
    config: SweepConfig,
    pairs: list[Pair],
    records: list[dict[str, Any]],
    out_dir: str | os.PathLike,
    progress: bool = True,
) -> list[Path]:
    """When ``config.diagnose``: diagnose the pairs not yet diagnosed, then write the summary beside the sweep
    table (``OUT/diagnostics.md``, ``OUT/diagnostics.csv``); returns the summary files (nothing when off)."""
    if not config.diagnose:
        return []
    out_dir = Path(out_dir)
    folders = diagnose_pairs(config, pairs, out_dir, progress)
    tasks, _ = best_merges(records)
    rows = summary_rows(pairs, folders, records)
    md = out_dir / f"{SUMMARY}.md"
    with atomic_file(md) as tmp:
        tmp.write_text(markdown(rows, tasks), encoding="utf-8")
    csv = out_dir / f"{SUMMARY}.csv"
    write_csv(csv, FIELDS + [c for task in tasks for c in (f"best {task}", f"best {task} at")], rows)
    return [md, csv]
