"""BLiMP fast accuracy of the sentence-starts probe's two runs, by where a pair's sentences first differ.

python benchmarks/real_data_probes/first_difference.py WORK      # WORK of sentence_starts.sh
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from transformers import AutoTokenizer

BINS = [(0, 0, "1st"), (1, 1, "2nd"), (2, 3, "3rd-4th"), (4, 10**9, "5th or later")]


def first_difference(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def main(work: Path) -> None:
    heads = [f"first differ at token {name}: pairs, acc" for *_, name in BINS]
    print("| blocks open | BLiMP fast (macro) | " + " | ".join(heads) + " |")
    print("|---" * (2 + len(BINS)) + "|")
    for variant in ("anywhere", "sentence"):
        checkpoint = work / f"run_{variant}" / "checkpoints" / "final"
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, trust_remote_code=True)
        samples = next((work / f"eval_{variant}").glob("*/samples_babylm_blimp_fast_*.jsonl"))
        pairs, right = Counter(), Counter()
        for line in samples.read_text().splitlines():
            item = json.loads(line)
            good, bad = (tokenizer(item["doc"][k], add_special_tokens=False)["input_ids"] for k in ("good", "bad"))
            at = first_difference(good, bad)
            name = next(name for low, high, name in BINS if low <= at <= high)
            pairs[name] += 1
            right[name] += item["acc"][1]
        results = next((work / f"eval_{variant}").glob("*/results_*.json"))
        macro = json.loads(results.read_text())["results"]["babylm_blimp_fast"]["acc,none"]
        cells = [f"{pairs[n]:,}, {100 * right[n] / pairs[n]:.2f}" for *_, n in BINS]
        print(f"| {variant} | {100 * macro:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
