"""``babymerge push OUT_DIR REPO_ID``: push a merged model with its generated model card."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("push", help="upload a merged folder to the Hugging Face Hub")
    parser.add_argument("out_dir", help="merged folder (written by mergekit-yaml)")
    parser.add_argument("repo_id", help="Hub repository, e.g. user/babyllava-linear-0.5")
    parser.add_argument("--results", help="lm-eval results JSON (default: OUT_DIR/eval_results.json when present)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded and print the card")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..hub.push import push

    uploads, card = push(args.out_dir, args.repo_id, results=args.results, private=args.private, dry_run=args.dry_run)
    for upload in uploads:
        size = "generated" if upload.size < 0 else f"{upload.size} bytes"
        print(f"{'would upload' if args.dry_run else 'uploaded'} {upload.path_in_repo} ({size})")
    if args.dry_run:
        print(card)
    return 0
