"""``babymerge init``: the shared initial checkpoint both training runs start from (and merges use as base)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import BabymergeError

PRESETS = ("paper", "small", "tiny")  # modeling.presets.PRESETS (kept here: `--help` imports no transformers)


def load_tokenizer(folder: str):
    """The tokenizer folder written by ``babymerge tokenizer``; it must know the ``<image>`` token."""
    from transformers import AutoTokenizer

    from ..training.tokenizer import IMAGE

    if not (Path(folder) / "tokenizer.json").is_file():
        raise BabymergeError(f"{folder}: no tokenizer.json (make one with `babymerge tokenizer`)")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if IMAGE not in tokenizer.get_vocab():
        raise BabymergeError(f"{folder}: the tokenizer has no {IMAGE} token")
    return tokenizer


def run(args: argparse.Namespace) -> int:
    from ..features.model_fields import model_fields
    from ..features.store import RANDOM_BACKBONE_WARNING, FeatureFile
    from ..training.init import init_model, save_checkpoint

    tokenizer = load_tokenizer(args.tokenizer)
    fields = {}
    if args.features:
        features = FeatureFile.load(args.features)
        fields = model_fields(features, args.features)
        if features.random_backbone:
            print(f"warning: {args.features}: {RANDOM_BACKBONE_WARNING}", file=sys.stderr)
    model = init_model(tokenizer, args.preset, seed=args.seed, **fields)
    template = tokenizer("", add_special_tokens=True)["input_ids"].count(model.config.image_token_index)
    if template != model.config.num_image_tokens:
        print(
            f"note: {args.tokenizer} puts {template} <image> token(s) after <s>; the checkpoint's tokenizer is set "
            f"to {model.config.num_image_tokens} to match the features",
            file=sys.stderr,
        )
    save_checkpoint(model, tokenizer, args.out, overwrite=args.overwrite)
    config = model.config
    print(
        f"wrote {args.out}: preset {args.preset}, seed {args.seed}, {model.num_parameters():,} parameters, "
        f"{config.num_image_tokens} image token(s) of {config.vision_feature_dim} dims ({config.image_pooling}), "
        f"black image {'from ' + args.features if args.features else 'zeros (no --features)'}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("init", help="the shared seeded initial checkpoint", description=__doc__)
    parser.add_argument("--tokenizer", required=True, help="tokenizer folder (from `babymerge tokenizer`)")
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features", help="feature file: black image, feature dim, image tokens and pooling")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.set_defaults(func=run)
