"""``babymerge train``: train a text-only or multimodal babyllava model from an initial checkpoint (HF Trainer)."""

from __future__ import annotations

import argparse
import logging

from ..training.config import TrainConfig
from ._flags import add_config_flags, config_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a text-only or multimodal model (HF Trainer)", description=__doc__
    )
    add_config_flags(parser, TrainConfig)
    parser.add_argument("--quiet", dest="progress", action="store_false", default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.run import train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(train(config_from_args(args)))
    return 0
