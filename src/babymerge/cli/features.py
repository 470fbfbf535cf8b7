"""``babymerge features``: pooled vision-backbone features of a folder of images or a captions file."""

from __future__ import annotations

import argparse
import sys

# Copies of features.backbone.DEFAULT_BACKBONE and features.pooling.POOLINGS: `--help` imports no torch
# (tests/test_cli_startup.py checks they agree).
DEFAULT_BACKBONE = "facebook/dinov2-large"
POOLINGS = ("mean", "grid", "patches")


def run(args: argparse.Namespace) -> int:
    from ..features.backbone import default_device, load_backbone, random_dinov2
    from ..features.extract import extract_features
    from ..features.images import list_images
    from ..features.store import RANDOM_BACKBONE_WARNING

    sources = list_images(args.images)
    if args.random_backbone:
        backbone = random_dinov2(args.seed)
        backbone.model.to(args.device or default_device())
        print(f"warning: {backbone.name} instead of {args.backbone}: {RANDOM_BACKBONE_WARNING}", file=sys.stderr)
    else:
        backbone = load_backbone(args.backbone, args.device)
    result = extract_features(
        sources,
        args.out,
        backbone,
        pooling=args.pooling,
        grid_size=args.grid_size,
        batch_size=args.batch_size,
        layer=args.layer,
    )
    tokens, dim = result.features.shape[1:]
    print(f"wrote {args.out}: {len(result.image_ids)} images x {tokens} tokens x {dim} dims ({args.pooling} pooling)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("features", help="extract pooled image features (resumable)", description=__doc__)
    parser.add_argument("images", help="a folder of images, or a captions CSV (image,caption) naming images")
    parser.add_argument("--out", required=True, help="feature file to write (.safetensors)")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE, help="Hugging Face vision model name or folder")
    parser.add_argument("--pooling", choices=POOLINGS, default="mean", help="mean: 1 token; grid: k*k; patches: all")
    parser.add_argument("--grid-size", type=int, default=2, help="k for grid pooling (default 2)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--layer", type=int, default=-2, help="hidden layer to take (default -2, as the paper)")
    parser.add_argument(
        "--random-backbone", action="store_true", help="use a tiny random DINOv2 (tests and demos only)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random backbone")
    parser.add_argument("--device", help="torch device for the backbone (default: cuda when available, else cpu)")
    parser.set_defaults(func=run)
