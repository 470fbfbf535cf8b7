"""``babymerge merge RECIPE --out OUT --model NAME=PATH ...``: a recipe from merge_recipes/ with its paths filled in."""

from __future__ import annotations

import argparse

from ..errors import BabymergeError
from ._flags import add_out, out_of


def parse_model(value: str) -> tuple[str, str]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH (e.g. text_model=ckpt/text), got {value!r}")
    return name, path


def shard_size(value: str) -> int:
    """``64M``, ``2B`` or a plain number of parameters (mergekit's own parser), at least 1."""
    from mergekit.common import parse_kmb

    try:
        size = parse_kmb(value)
    except (ValueError, IndexError):
        size = 0
    if size < 1:
        raise argparse.ArgumentTypeError(f"expected a number of parameters such as 64M, 500K or 2B, got {value!r}")
    return size


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "merge", help="run a merge recipe through mergekit with its /path/to/NAME placeholders filled in"
    )
    parser.add_argument("recipe", help="recipe YAML (e.g. merge_recipes/linear_alpha0.5.yml)")
    add_out(parser, "output folder (must not exist)", old_positional="OUT")
    parser.add_argument(
        "--model",
        action="append",
        type=parse_model,
        default=[],
        metavar="NAME=PATH",
        help="fill /path/to/NAME, e.g. text_model=ckpt/text multimodal_model=ckpt/mm init_model=ckpt/init",
    )
    parser.add_argument("--random-seed", type=int, default=None, help="seed for random methods (DARE)")
    parser.add_argument(
        "--out-shard-size",
        type=shard_size,
        default=None,
        metavar="SIZE",
        help="parameters per output shard, e.g. 64M (mergekit's --out-shard-size; default 5B): lower memory",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..merging.recipes import merge_recipe

    paths = dict(args.model)
    if len(paths) != len(args.model):
        raise BabymergeError("--model: a NAME is given twice")
    out = merge_recipe(
        args.recipe,
        out_of(args),
        paths,
        random_seed=args.random_seed,
        quiet=not args.progress,
        out_shard_size=args.out_shard_size,
    )
    print(out)
    return 0
