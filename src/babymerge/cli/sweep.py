"""``babymerge sweep``: merge a text-only and a multimodal model (or checkpoint series) in memory over methods
and alphas, score every point through lm-eval, and write a results store, a table and plots."""

from __future__ import annotations

import argparse
from pathlib import Path


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _param(value: str) -> tuple[str, str, float | str]:
    key, _, raw = value.partition("=")
    method, _, name = key.partition(".")
    if not raw or not name:
        raise argparse.ArgumentTypeError(f"expected METHOD.PARAM=VALUE (e.g. ties.density=0.5), got {value!r}")
    try:
        return method, name, float(raw)
    except ValueError:
        return method, name, raw


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help=__doc__.splitlines()[0], description=__doc__)
    p.add_argument("--config", type=Path, help="YAML with SweepConfig fields (flags given here override it)")
    p.add_argument("--text", type=Path, help="text-only checkpoint, training run or folder of milestone checkpoints")
    p.add_argument("--multimodal", type=Path, help="multimodal checkpoint or series")
    p.add_argument("--base", type=Path, help="shared initial checkpoint (needed by task_arithmetic, ties, ...)")
    p.add_argument("--methods", type=_csv, help="mergekit methods (default linear,task_arithmetic,ties)")
    p.add_argument("--param", type=_param, action="append", default=[], help="METHOD.PARAM=VALUE, repeatable")
    p.add_argument("--alphas", type=lambda v: [float(x) for x in _csv(v)], help="default 0,0.1,...,1")
    p.add_argument("--tasks", type=_csv, help="lm-eval task names (default babylm_blimp_fast)")
    p.add_argument("--pairing", type=_csv, help="best (paper's selection rule), aligned, final (default best)")
    p.add_argument("--select-text-by", help="task picking the best text-only checkpoint (default babylm_blimp_fast)")
    p.add_argument("--select-multimodal-by", help="task picking the best multimodal one (default babylm_winoground)")
    p.add_argument("--data-dir", type=Path, help="evaluation data directory (BabyLM evaluation_data layout)")
    p.add_argument("--features", type=Path, help="feature file for image tasks (babymerge features)")
    p.add_argument("--limit", type=int, help="documents per task")
    p.add_argument("--seed", type=int, help="seed of randomised methods (dare_*, della*; default 0), stored per result")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", help="cpu (default), cuda, cuda:1 ...")
    p.add_argument("--out", type=Path, required=True, help="output folder: results.jsonl, table, plots/")
    p.add_argument(
        "--materialize",
        type=_csv,
        default=[],
        help="write merges as full folders through mergekit: METHOD:ALPHA,... or best",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..sweep.stage import load_config, sweep_and_report

    fields = ["text", "multimodal", "base", "methods", "alphas", "tasks", "pairing", "select_text_by"]
    fields += ["select_multimodal_by", "data_dir", "features", "limit", "seed", "batch_size", "device"]
    overrides = {name: getattr(args, name) for name in fields if getattr(args, name) is not None}
    for method, name, value in args.param:
        overrides.setdefault("method_parameters", {}).setdefault(method, {})[name] = value
    config = load_config(args.config, overrides, store=args.out / "results.jsonl")
    outcome = sweep_and_report(config, args.out, args.materialize, progress=not args.no_progress)
    if outcome.table:
        print(outcome.table, end="")
        if outcome.note:
            print(f"NOTE: {outcome.note}")
        for path in outcome.files:
            print(f"wrote {path}")
    return 0
