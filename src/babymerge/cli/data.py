"""``babymerge data``: where each evaluation data set belongs in the data folder, and its official source;
with ``--build --from DOWNLOADS...``, first link the downloaded sets into that layout."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="list the evaluation data sets, where they go in the data folder and where to get them; "
        "--build links downloaded sets into that layout",
        description="Shows the BabyLM evaluation_data layout the tasks read, which parts are present, and the "
        "official sources for users who are online (nothing is downloaded). With --build --from DOWNLOADS..., "
        "first links the data sets recognised in those folders (BabyLM's evaluation_data folders, EWoK zips as "
        "they come, the source repositories' folders) into --data-dir as symlinks: nothing is copied or extracted.",
    )
    parser.add_argument(
        "--data-dir", help="folder in BabyLM's evaluation_data layout (default $BABYMERGE_DATA or user cache)"
    )
    parser.add_argument(
        "--build", action="store_true", help="link the data sets found in --from into --data-dir, then list"
    )
    parser.add_argument(
        "--from",
        dest="downloads",
        nargs="+",
        metavar="DOWNLOADS",
        help="folders holding downloaded data sets (searched recursively; with --build)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import BabymergeError
    from ..evaluation import data_dir, describe_sources

    if args.build != bool(args.downloads):
        raise BabymergeError("--build and --from DOWNLOADS... go together (link the downloaded sets into --data-dir)")
    if args.build:
        from ..evaluation.layout import build_layout

        for link in build_layout(args.downloads, data_dir(args.data_dir)):
            print(f"linked {link.link} -> {link.target}")
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
