"""``babymerge tokenizer``: train the byte-level BPE tokenizer on BabyLM-format text."""

from __future__ import annotations

import argparse

from ..training.config import TokenizerConfig
from ._flags import add_config_flags, config_from_args


def run(args: argparse.Namespace) -> int:
    from ..training.tokenizer import run_tokenizer

    print(run_tokenizer(config_from_args(args)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tokenizer", help="train the BPE tokenizer on BabyLM text", description=__doc__)
    add_config_flags(parser, TokenizerConfig, positional=["text"])
    parser.set_defaults(func=run)
