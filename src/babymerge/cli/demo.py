"""``babymerge demo``: the whole job on a small synthetic developmental world (no downloads), or on real data
(--train-text, --images-captions, --data-dir): tokenizer, features, one initialisation, text-only and multimodal
training, a merge sweep, the equal-word comparison, the tables and the plots."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help=__doc__.splitlines()[0], description=__doc__)
    p.add_argument("--config", type=Path, help="YAML file of demo fields (flags given here override it)")
    p.add_argument("--out", type=Path, help="output folder (default babymerge-demo)")
    p.add_argument("--data-dir", type=Path, help="real data: evaluation data in BabyLM's evaluation_data layout")
    p.add_argument("--train-text", type=Path, help="real data: BabyLM-format training text (folder of .train files)")
    p.add_argument(
        "--images-captions", type=Path, help="real data: Flickr8k-format captions.txt (image,caption) beside images/"
    )
    p.add_argument("--quick", action="store_true", default=None, help="a much smaller world and grid (for tests)")
    p.add_argument("--seed", type=int)
    p.add_argument("--epochs", type=float, help="training epochs (default 4 on the world, 1 on real data)")
    p.add_argument("--text-max-words", type=int, help="real data: words of BabyLM text to train on")
    p.add_argument("--threads", type=int, help="torch CPU threads (default 1: tiny models slow down with 2 under load)")
    p.add_argument("--device")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo.run import DemoConfig, load_config, run_demo

    fields = {
        "out": args.out,
        "data_dir": args.data_dir,
        "train_text": args.train_text,
        "images_captions": args.images_captions,
        "quick": args.quick,
        "seed": args.seed,
        "epochs": args.epochs,
        "text_max_words": args.text_max_words,
        "threads": args.threads,
        "device": args.device,
        "progress": args.progress,
    }
    if args.config:
        config = load_config(args.config, **fields)
    else:
        config = DemoConfig(**{"out": Path("babymerge-demo")} | {k: v for k, v in fields.items() if v is not None})
    outcome = run_demo(config)
    world = "the synthetic world (generated, not real data)"
    source = world if outcome["synthetic"] else f"real data ({config.train_text})"
    if outcome["equal_words"]:
        print(f"\nText-only vs multimodal at equal words seen on {source}, scores x100:\n")
        print(outcome["equal_words"])
    print(f"Merges of the pair the paper's rule selects ({outcome['pair']}), scores x100:\n")
    print(outcome["table"], end="")
    for line in outcome["remarks"]:
        print(line)
    if outcome["note"]:
        print(f"\n{outcome['note']}")
    for path in outcome["files"]:
        print(f"wrote {path}")
    return 0
