"""``babymerge convert``: between babyllava checkpoints and the authors' reference Llava layout, bit for bit."""

from __future__ import annotations

import argparse
import sys

from ..errors import BabymergeError
from ._flags import add_out, out_of


def run(args: argparse.Namespace) -> int:
    from ..convert.reference import to_babyllava, to_reference
    from ..io import atomic_dir

    if args.to == "babyllava" and args.vision_tower:
        raise BabymergeError("--vision-tower only applies with --to reference")
    if args.to == "reference" and args.black_features:
        raise BabymergeError("--black-features only applies with --to babyllava (the black image travels along)")
    out = out_of(args)
    with atomic_dir(out, overwrite=args.overwrite) as tmp:
        if args.to == "babyllava":
            notes = to_babyllava(str(args.input), str(tmp), black_features=args.black_features)
        else:
            notes = to_reference(str(args.input), str(tmp), vision_tower=args.vision_tower)
    for note in notes:
        print(note, file=sys.stderr)
    print(f"wrote {out} ({args.to} layout)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("convert", help="babyllava <-> the authors' reference layout", description=__doc__)
    parser.add_argument("input", help="checkpoint folder to read")
    add_out(parser, "checkpoint folder to write", old_positional="OUTPUT")
    parser.add_argument("--to", required=True, choices=("babyllava", "reference"))
    parser.add_argument("--black-features", help="feature file whose black image to use (--to babyllava)")
    parser.add_argument("--vision-tower", help="DINOv2 folder to attach as vision_tower.* (--to reference)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.set_defaults(func=run)
