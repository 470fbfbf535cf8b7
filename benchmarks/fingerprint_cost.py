"""What the sweep's content fingerprint of a checkpoint costs, beside what the sweep pays for that checkpoint
anyway (loading its tensors), on a paper-size babyllava (6 layers, width 768, 16k vocabulary).

    python benchmarks/fingerprint_cost.py --repeats 5

Each round, measured side by side on a warm page cache: ``checkpoint_fingerprint`` (SHA-256 of every
safetensors shard, the in-process cache cleared) and ``load_state`` (read, header/truncation/finite checks,
tensors loaded). Prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def paper_checkpoint(folder: Path) -> Path:
    from babymerge.modeling import BabyLlavaForConditionalGeneration
    from babymerge.modeling.presets import make_config

    torch.manual_seed(0)
    config = make_config("paper", vocab_size=16_000, image_token_index=4, bos_token_id=1, eos_token_id=2)
    BabyLlavaForConditionalGeneration(config).save_pretrained(folder)
    return folder


def main() -> None:
    from babymerge.sweep import fingerprint
    from babymerge.sweep.merge import load_state

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = paper_checkpoint(Path(tmp) / "paper")
        size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        load_state(folder)  # warm the page cache
        hashing, loading = [], []
        for _ in range(args.repeats):
            fingerprint._CACHE.clear()
            start = time.perf_counter()
            fingerprint.checkpoint_fingerprint(folder)
            hashing.append(time.perf_counter() - start)
            start = time.perf_counter()
            load_state(folder)
            loading.append(time.perf_counter() - start)
    h, ld = statistics.median(hashing), statistics.median(loading)
    print(f"checkpoint: {size / 1e6:.0f} MB of safetensors")
    print(f"fingerprint (SHA-256, median of {args.repeats}): {h:.3f} s")
    print(f"load_state (checks + tensors, median of {args.repeats}): {ld:.3f} s")
    print(f"ratio fingerprint / load_state: {h / ld:.2f}")


if __name__ == "__main__":
    main()
