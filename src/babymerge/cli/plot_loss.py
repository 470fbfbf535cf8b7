"""``babymerge plot-loss``: the training-loss curves of runs against words seen, in one figure."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("plot-loss", help="plot the loss curves of training runs (their loss.jsonl)")
    parser.add_argument("runs", nargs="+", help="output folders of `babymerge train`")
    parser.add_argument("--out", required=True, help="figure file (.png, .pdf or .svg)")
    parser.add_argument("--labels", nargs="+", help="one legend label per run (default: folder name and mode)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.loss_plot import plot_loss

    print(plot_loss(args.runs, args.out, labels=args.labels))
    return 0
