"""``babymerge fold``: merge a LoRA adapter checkpoint into its base, giving a full babyllava folder."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("fold", help="turn a LoRA adapter checkpoint into a full babyllava folder")
    parser.add_argument("adapter", help="adapter folder (a checkpoint of `babymerge train --lora`)")
    parser.add_argument("--out", required=True, help="output folder (must not exist)")
    parser.add_argument("--base", help="base model folder (default: the adapter's base_model_name_or_path)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.lora import fold_adapter

    print(fold_adapter(args.adapter, args.out, base=args.base))
    return 0
