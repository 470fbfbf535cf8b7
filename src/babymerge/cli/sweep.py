"""``babymerge sweep``: merge a text-only and a multimodal model (or checkpoint series) in memory over methods
and alphas, score every point through lm-eval, and write a results store, a table and plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..sweep.config import SweepConfig
from ._flags import add_config_flags, config_from_args, parse_list


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
    p.add_argument("--out", type=Path, required=True, help="output folder: results.jsonl, table, plots/")
    add_config_flags(p, SweepConfig)
    p.add_argument("--param", type=_param, action="append", default=[], help="METHOD.PARAM=VALUE, repeatable")
    p.add_argument(
        "--materialize",
        type=parse_list(str),
        default=[],
        help="write merges as full folders through mergekit: METHOD:ALPHA,... or best",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..sweep.stage import sweep_and_report

    parameters: dict[str, dict[str, float | str]] = {}
    for method, name, value in args.param:
        parameters.setdefault(method, {})[name] = value
    given = {"method_parameters": parameters or None}
    config = config_from_args(args, given=given, store=args.out / "results.jsonl")
    from ..logs import no_progress_bars

    with no_progress_bars(not args.progress):
        outcome = sweep_and_report(config, args.out, args.materialize, progress=args.progress)
    if outcome.table:
        print(outcome.table, end="")
        if outcome.note:
            print(f"NOTE: {outcome.note}")
        for path in outcome.files:
            print(f"wrote {path}")
    return 0
