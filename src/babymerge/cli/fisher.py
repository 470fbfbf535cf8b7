"""``babymerge fisher MODEL``: a checkpoint's diagonal empirical Fisher, beside it, for the ``fisher`` merge method."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "fisher", help="diagonal empirical Fisher of a checkpoint, written to MODEL.fisher.safetensors (Fisher merging)"
    )
    parser.add_argument("model", help="checkpoint folder; the statistics go beside it, to MODEL.fisher.safetensors")
    parser.add_argument("--text", help="text file, one sample per line (each gets the black image)")
    parser.add_argument("--captions", help="captions file (Flickr8k CSV or token file); needs --features")
    parser.add_argument("--features", help="feature file (features.safetensors) with the captions' images")
    parser.add_argument("--max-samples", type=int, default=256, help="samples per source (default 256)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per sample at most (default 128)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..merging.fisher import fisher_file

    out = fisher_file(
        args.model,
        text=args.text,
        captions=args.captions,
        features=args.features,
        max_samples=args.max_samples,
        max_length=args.max_length,
    )
    print(out)
    return 0
