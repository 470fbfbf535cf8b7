"""``babymerge features``: pooled vision-backbone features of a folder of images or a captions file."""

from __future__ import annotations

import argparse

from ..features.config import FeaturesConfig
from ._flags import add_config_flags, config_from_args


def run(args: argparse.Namespace) -> int:
    from ..features.extract import run_features

    config = config_from_args(args)
    result = run_features(config)
    tokens, dim = result.features.shape[1:]
    print(
        f"wrote {config.out}: {len(result.image_ids)} images x {tokens} tokens x {dim} dims ({config.pooling} pooling)"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("features", help="extract pooled image features (resumable)", description=__doc__)
    add_config_flags(parser, FeaturesConfig, positional=["images"])
    parser.set_defaults(func=run)
