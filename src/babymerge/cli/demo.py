"""``babymerge demo``: the whole job on a small synthetic developmental world (no downloads), or on real data
with --data-dir: tokenizer, features, one initialisation, text-only and multimodal training, a merge sweep,
the table and the plots."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help=__doc__.splitlines()[0], description=__doc__)
    p.add_argument("--out", type=Path, default=Path("babymerge-demo"), help="output folder (default babymerge-demo)")
    p.add_argument(
        "--data-dir",
        type=Path,
        help="real data instead of the synthetic world: babylm_text/train_600k, flickr8k_1k, blimp/babylm_blimp_fast",
    )
    p.add_argument("--quick", action="store_true", help="a much smaller world and grid (for tests, under 2 minutes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=float, help="training epochs (default 4 on the world, 1 on real data)")
    p.add_argument("--text-max-words", type=int, help="real data: words of BabyLM text to train on")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo.run import DemoConfig, run_demo

    config = DemoConfig(
        out=args.out,
        data_dir=args.data_dir,
        quick=args.quick,
        seed=args.seed,
        epochs=args.epochs,
        text_max_words=args.text_max_words,
        device=args.device,
        progress=not args.no_progress,
    )
    outcome = run_demo(config)
    source = (
        "the synthetic world (generated, not real data)" if outcome["synthetic"] else f"real data in {args.data_dir}"
    )
    print(f"\nMerged {outcome['pair']} on {source}; scores x100:\n")
    print(outcome["table"], end="")
    if outcome["note"]:
        print(f"\n{outcome['note']}")
    for path in outcome["files"]:
        print(f"wrote {path}")
    return 0
