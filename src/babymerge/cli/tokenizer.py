"""``babymerge tokenizer``: train the byte-level BPE tokenizer on BabyLM-format text."""

from __future__ import annotations

import argparse

from ..errors import BabymergeError

PAPER_RATIO = 1.36


def run(args: argparse.Namespace) -> int:
    from ..io import atomic_dir
    from ..training.tokenizer import subwords_per_word, text_files, train_tokenizer

    if args.vocab_size < 300:
        raise BabymergeError(f"--vocab-size must be at least 300 (256 bytes + specials), got {args.vocab_size}")
    if args.num_image_tokens < 1:
        raise BabymergeError(f"--num-image-tokens must be at least 1, got {args.num_image_tokens}")
    files = text_files(args.text_dir)
    tokenizer = train_tokenizer(
        files, args.vocab_size, num_image_tokens=args.num_image_tokens, min_frequency=args.min_frequency
    )
    budget = args.ratio_chars or sum(file.stat().st_size for file in files)
    ratio = subwords_per_word(tokenizer, files, max_chars=budget)
    with atomic_dir(args.out, overwrite=args.overwrite) as tmp:
        tokenizer.save_pretrained(tmp)
    measured = f"first {budget:,} characters" if args.ratio_chars else "all text"
    print(
        f"wrote {args.out}: vocabulary {len(tokenizer)} from {len(files)} files; "
        f"{ratio:.2f} subwords per word on {measured} (paper: {PAPER_RATIO})"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tokenizer", help="train the BPE tokenizer on BabyLM text", description=__doc__)
    parser.add_argument("text_dir", help="folder of BabyLM .train files (or one file)")
    parser.add_argument("--out", required=True, help="tokenizer folder to write")
    parser.add_argument("--vocab-size", type=int, default=16000)
    parser.add_argument("--num-image-tokens", type=int, default=1, help="<image> tokens after <s> (default 1)")
    parser.add_argument("--min-frequency", type=int, default=2, help="least count of a pair to merge")
    parser.add_argument(
        "--ratio-chars", type=int, default=0, help="measure subwords per word on the first N characters (default: all)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.set_defaults(func=run)
