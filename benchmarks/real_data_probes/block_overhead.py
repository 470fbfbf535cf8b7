"""Words seen in one pass over a text folder with blocks cut anywhere and with blocks that open at sentence starts.

python benchmarks/real_data_probes/block_overhead.py TOKENIZER TEXT_DIR --max-length 128 256
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers import AutoTokenizer

from babymerge.training.data import image_prefix, pack, sentence_starts, tokenize_text
from babymerge.training.tokenizer import text_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tokenizer", type=Path)
    parser.add_argument("text", type=Path)
    parser.add_argument("--max-length", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--num-image-tokens", type=int, default=1)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    stream = tokenize_text(tokenizer, text_files(args.text), progress=False)
    starts = sentence_starts(stream.ids, tokenizer)
    prefix = image_prefix(tokenizer, args.num_image_tokens)
    print(f"{stream.num_words:,} words, {len(stream.ids):,} tokens, {len(starts):,} sentence starts")
    print("| max_length | words seen, cut anywhere | words seen, sentence starts | ratio |")
    print("|---|---|---|---|")
    for length in args.max_length:
        anywhere = int(pack(stream, prefix, length)[1].sum())
        sentences = int(pack(stream, prefix, length, starts)[1].sum())
        print(f"| {length} | {anywhere:,} | {sentences:,} | {sentences / anywhere:.4f} |")


if __name__ == "__main__":
    main()
