"""``babymerge eval``: lm-eval's CLI with the ``babyllava`` model type registered and our tasks included."""

from __future__ import annotations

import argparse

from ..evaluation.config import EvalConfig
from ._flags import add_config_flags, config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a babyllava checkpoint with lm-eval (BabyLM 2025 tasks, image features)",
        description="Runs `lm_eval run --model babyllava --tasks ...` (plain `lm_eval` works too once babymerge is "
        "installed); arguments after `--lm-eval` go to lm-eval unchanged. Results are saved as lm-eval writes them, "
        "plus a summary table.",
    )
    add_config_flags(parser, EvalConfig, positional=["model"])
    parser.add_argument("--output-path", dest="out", help=argparse.SUPPRESS)  # the old spelling of --out
    parser.add_argument(
        "--lm-eval", nargs=argparse.REMAINDER, default=[], help="last option: everything after it goes to lm-eval"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import run_cli
    from ..logs import no_progress_bars

    config = config_from_args(args)
    with no_progress_bars(not config.progress):
        table = run_cli(
            config.model,
            config.tasks,
            output_path=str(config.out),
            data_dir=config.data_dir and str(config.data_dir),
            features=config.features and str(config.features),
            allow_feature_mismatch=config.allow_feature_mismatch,
            batch_size=str(config.batch_size),
            device=config.device,
            limit=None if config.limit is None else f"{config.limit:g}",
            extra=args.lm_eval,
            save_to_model=config.save_to_model,
        )
    print(table)
    return 0
