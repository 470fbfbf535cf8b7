"""``babymerge diagnose TEXT MULTIMODAL --base INIT --out DIR``: the loss barrier along alpha on held-out text
and captions, and task-vector diagnostics per layer and tensor group (cosine, norms, distance, sign conflicts)."""

from __future__ import annotations

import argparse

from ..diagnose.config import DiagnoseConfig
from ._flags import add_config_flags, config_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "diagnose", help="loss barrier along alpha and weight diagnostics of a pair", description=__doc__
    )
    add_config_flags(parser, DiagnoseConfig, positional=["text_model", "multimodal_model"])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..diagnose.run import diagnose

    out, files = diagnose(config_from_args(args))
    print((out / "diagnose.md").read_text(encoding="utf-8"), end="")
    for path in files:
        print(f"wrote {path}")
    return 0
