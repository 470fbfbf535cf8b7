"""``babymerge eval``: lm-eval's CLI with the ``babyllava`` model type registered and our tasks included."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a babyllava checkpoint with lm-eval (BabyLM 2025 tasks, image features)",
        description="Runs `lm_eval run --model babyllava --tasks ...` (plain `lm_eval` works too once babymerge is "
        "installed); arguments after `--lm-eval` go to lm-eval unchanged. Results are saved as lm-eval writes them, "
        "plus a summary table.",
    )
    parser.add_argument("model_dir", help="checkpoint folder (or Hub id)")
    parser.add_argument("--tasks", required=True, help="comma-separated tasks or groups, e.g. babylm_text_fast")
    parser.add_argument("--output-path", required=True, help="folder for lm-eval's results")
    parser.add_argument(
        "--data-dir",
        help="folder in BabyLM's evaluation_data layout (see `babymerge data`; default $BABYMERGE_DATA or user cache)",
    )
    parser.add_argument("--features", help="feature file (babymerge features) for image tasks")
    parser.add_argument("--batch-size", default="32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", help="documents per task (for quick checks)")
    parser.add_argument(
        "--save-to-model",
        action="store_true",
        help="also write MODEL_DIR/eval_results.json (metrics only) for `babymerge push`",
    )
    parser.add_argument(
        "--lm-eval", nargs=argparse.REMAINDER, default=[], help="last option: everything after it goes to lm-eval"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import run_cli

    table = run_cli(
        args.model_dir,
        args.tasks,
        output_path=args.output_path,
        data_dir=args.data_dir,
        features=args.features,
        batch_size=args.batch_size,
        device=args.device,
        limit=args.limit,
        extra=args.lm_eval,
        save_to_model=args.save_to_model,
    )
    print(table)
    return 0
