"""``babymerge gram MODEL [--out OUT]``: input Gram matrices of every linear layer, for the RegMean merge method."""

from __future__ import annotations

import argparse

from ._flags import add_out, out_of


def register(subparsers) -> None:
    parser = subparsers.add_parser("gram", help="Gram matrices of a model's linear-layer inputs (for RegMean)")
    parser.add_argument("model", help="checkpoint folder")
    add_out(
        parser,
        "output .safetensors file (must not exist; default MODEL.gram.safetensors beside the folder)",
        old_positional="OUT",
    )
    parser.add_argument("--text", help="text file, one sample per line (each gets the black image)")
    parser.add_argument("--captions", help="captions file (Flickr8k CSV or token file); needs --features")
    parser.add_argument("--features", help="feature file (features.safetensors) with the captions' images")
    parser.add_argument("--max-samples", type=int, default=256, help="samples per source (default 256)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..merging.gram import gram_file

    out = gram_file(
        args.model,
        out_of(args) if args.out or args.old_out else None,
        text=args.text,
        captions=args.captions,
        features=args.features,
        max_samples=args.max_samples,
        batch_size=args.batch_size,
        max_length=args.max_length,
    )
    print(out)
    return 0
