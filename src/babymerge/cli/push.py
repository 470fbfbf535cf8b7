"""``babymerge push MODEL_DIR REPO_ID``: push a merged model with its generated model card."""

from __future__ import annotations

import argparse


def parse_parent(value: str) -> tuple[str, str]:
    key, sep, repo = value.partition("=")
    if not sep or not key or not repo:
        raise argparse.ArgumentTypeError(
            f"expected KEY=owner/name (KEY: a parent's path, the end of it, or its name on the card), got {value!r}"
        )
    return key, repo


def register(subparsers) -> None:
    parser = subparsers.add_parser("push", help="upload a merged folder to the Hugging Face Hub")
    parser.add_argument("model_dir", help="merged folder (written by mergekit-yaml or babymerge merge)")
    parser.add_argument("repo_id", help="Hub repository, e.g. user/babyllava-linear-0.5")
    parser.add_argument(
        "--parent",
        action="append",
        type=parse_parent,
        default=[],
        metavar="KEY=owner/name",
        help="Hub id of a parent that the recipe names by a local folder (KEY: its path, the end of it, or its "
        "name on the card, e.g. text/final for runs/text/checkpoints/final); these become the card's base_model",
    )
    parser.add_argument(
        "--results",
        help="lm-eval results JSON (default: MODEL_DIR/eval_results.json from `babymerge eval --save-to-model`)",
    )
    parser.add_argument("--license", default="unknown", help="Hub licence identifier for the card (default unknown)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded and print the card")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import BabymergeError
    from ..hub.push import push

    parents = dict(args.parent)
    if len(parents) != len(args.parent):
        raise BabymergeError("--parent: a KEY is given twice")
    uploads, card = push(
        args.model_dir,
        args.repo_id,
        results=args.results,
        parents=parents,
        license=args.license,
        private=args.private,
        dry_run=args.dry_run,
    )
    for upload in uploads:
        size = f"{upload.size} bytes" + (", generated" if upload.content is not None else "")
        print(f"{'would upload' if args.dry_run else 'uploaded'} {upload.path_in_repo} ({size})")
    if args.dry_run:
        print(card)
    return 0
