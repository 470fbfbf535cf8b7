"""``babymerge data``: where each evaluation data set belongs in the data folder, and its official source."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="list the evaluation data sets, where they go in the data folder and where to get them",
        description="Shows the BabyLM evaluation_data layout the tasks read, which parts are present, and the "
        "official sources for users who are online (nothing is downloaded).",
    )
    parser.add_argument("--data-dir", help="BabyLM evaluation_data folder (default $BABYMERGE_DATA or user cache)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import data_dir, describe_sources

    print(f"data dir: {data_dir(args.data_dir)}")
    print("| data set | present | path | source |\n|---|---|---|---|")
    for row in describe_sources(args.data_dir):
        print(f"| {row['name']} | {row['present']} | {row['path']} | {row['origin']} |")
    return 0
