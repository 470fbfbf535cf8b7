"""``babymerge features``: pooled vision-backbone features of a folder of images or a captions file."""

from __future__ import annotations

import argparse

from ..features.config import FeaturesConfig
from ._flags import add_config_flags, config_from_args


def run(args: argparse.Namespace) -> int:
    from ..features.images import list_images
    from ..model_source import resolve

    config = config_from_args(args)
    list_images(config.images)  # the inputs, then the backbone, before torch loads: each mistake one line at once
    if not config.random_backbone:
        resolve(config.backbone, "backbone", instead=", or use --random-backbone (tests and demos)")
    from ..features.extract import run_features

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
