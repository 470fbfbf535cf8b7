"""``babymerge init``: the shared initial checkpoint both training runs start from (and merges use as base)."""

from __future__ import annotations

import argparse

from ..training.config import InitConfig
from ._flags import add_config_flags, config_from_args


def run(args: argparse.Namespace) -> int:
    from ..training.init import run_init

    print(run_init(config_from_args(args)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("init", help="the shared seeded initial checkpoint", description=__doc__)
    add_config_flags(parser, InitConfig)
    parser.set_defaults(func=run)
