"""``babymerge <stage> ...``: the one command line face.

Each module in this package (except ``_``-prefixed helpers) adds one subcommand: it defines
``register(subparsers)`` which adds a parser whose ``func`` default takes the parsed arguments and calls into
its stage. Commands whose settings are a pydantic config take their flags from it (``_flags``). Conventions
for every command: ``--out`` is where output goes, ``--device`` defaults to cpu, ``--no-progress`` silences
progress bars, ``--data-dir`` is a folder in BabyLM's evaluation_data layout. A ``BabymergeError`` or pydantic
``ValidationError`` becomes one line and exit status 2; any other exception keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from pydantic import ValidationError

from ..errors import BabymergeError, one_line
from ._flags import plain


class Parser(argparse.ArgumentParser):
    """Help without markup; subcommand parsers are of the same class."""

    def format_help(self) -> str:
        return plain(super().format_help())


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(prog="babymerge", description=plain(__doc__.splitlines()[0]))
    parser.add_argument("--version", action="version", version=f"babymerge {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except (BabymergeError, ValidationError) as error:  # user errors; anything else is a bug and keeps its traceback
        print(f"babymerge {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"babymerge {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
