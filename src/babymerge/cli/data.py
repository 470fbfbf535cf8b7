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
    parser.add_argument(
        "--data-dir", help="folder in BabyLM's evaluation_data layout (default $BABYMERGE_DATA or user cache)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import BabymergeError
    from ..evaluation import data_dir, describe_sources

    rows = describe_sources(args.data_dir)
    print(f"data dir: {data_dir(args.data_dir)}")
    print("| data set | present | required | path | source |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['name']} | {row['present']} | {row['required']} | {row['path']} | {row['origin']} |")
    missing = [row["name"] for row in rows if row["required"] == "yes" and row["present"] == "no"]
    if missing:
        raise BabymergeError(
            f"{data_dir(args.data_dir)}: required data missing: {', '.join(missing)} (put each at the path shown "
            f"above: BabyLM's evaluation_data layout, a folder or NAME.zip)"
        )
    return 0
