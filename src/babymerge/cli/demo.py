"""``babymerge demo``: the whole job on a small synthetic developmental world (no downloads), or on real data
(--train-text, --images-captions, --data-dir): tokenizer, features, one initialisation, text-only and multimodal
training, a merge sweep, the equal-word comparison, the tables and the plots."""

from __future__ import annotations

import argparse

from ..demo.config import DemoConfig
from ._flags import add_config_flags, config_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help=__doc__.splitlines()[0], description=__doc__)
    add_config_flags(p, DemoConfig, skip=["seeds"])
    p.add_argument("--seeds", type=int, metavar="N", help="train and sweep one pair per seed 0..N-1 (OUT/seed-S/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo.run import run_demo

    config = config_from_args(args)  # --seeds N: DemoConfig reads N as seeds 0..N-1
    from ..logs import no_progress_bars

    with no_progress_bars(not config.progress):
        outcome = run_demo(config)
    world = "the synthetic world (generated, not real data)"
    source = world if outcome["synthetic"] else f"real data ({config.train_text})"
    if outcome["equal_words"]:
        print(f"\nText-only vs multimodal at equal words seen on {source}, scores x100:\n")
        print(outcome["equal_words"])
    if outcome.get("seeds"):
        print(f"\nAcross seeds {outcome['seeds']} on {source}: merges of {outcome['pair']} and equal words:\n")
    else:
        print(f"Merges of the pair the paper's rule selects ({outcome['pair']}), scores x100:\n")
    print(outcome["table"], end="")
    for line in outcome["remarks"]:
        print(line)
    if outcome["note"]:
        print(f"\n{outcome['note']}")
    for path in outcome["files"]:
        print(f"wrote {path}")
    return 0
