"""Merge time and peak memory of the paper-size babyllava against the safetensors read/write floor.

One run measures, side by side on the same two parents (written once, then read from the page cache):
- floor: read both inputs into memory (file bytes -> ``safetensors.torch.load``) and write one model with
  ``save_file``: the I/O any merge must do, with no arithmetic;
- in-process: mergekit's ``run_merge`` after imports (babymerge's guarded version: checks, NaN scan, guard,
  atomic rename) and mergekit's own ``run_merge`` without babymerge's checks (the guard's share);
- the ``mergekit-yaml`` process, wall clock from start to exit (imports included);
- peak memory: each in-process measurement runs in a fresh child process that samples /proc/self/status every
  5 ms; the merge's peak above the after-imports baseline is reported for RssAnon (allocated memory) and VmRSS
  (which also counts the inputs' memory-mapped, reclaimable page-cache pages), against one model's size;
- the same guarded merge with ``--out-shard-size 64M`` (mergekit holds a whole output shard in memory);
- start-up: ``python -c pass`` with the hook and with it switched off (``BABYMERGE_NO_MERGEKIT_HOOK=1``).

Usage: python benchmarks/merge_bench.py [--preset paper] [--vocab 16000] [--repeats 3] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from merge_timing import child, linear_recipe, mergekit_yaml_seconds

CHILD = r"""
import json, resource, sys, threading, time, os
kind, out, a, b = sys.argv[1:5]
peak = {"RssAnon": 0, "VmRSS": 0}
def sample():
    while True:
        for line in open("/proc/self/status"):
            key = line.split(":")[0]
            if key in peak:
                peak[key] = max(peak[key], int(line.split()[1]))
        time.sleep(0.005)
import torch
from safetensors.torch import load, save_file
if kind != "floor":
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge
    import mergekit.merge
    recipe = {"merge_method": "linear", "dtype": "float32", "parameters": {"normalize": False},
              "models": [{"model": a, "parameters": {"weight": 0.5}}, {"model": b, "parameters": {"weight": 0.5}}]}
    config = MergeConfiguration.model_validate(recipe)
    merge = mergekit.merge.run_merge.__wrapped__ if kind == "mergekit" else run_merge
    shards = {"out_shard_size": 64 * 2**20} if kind == "guarded-64M-shards" else {}
    options = MergeOptions(quiet=True, **shards)
threading.Thread(target=sample, daemon=True).start()
time.sleep(0.05)
base = dict(peak)
start = time.perf_counter()
if kind == "floor":
    # Read every byte of both inputs (load_file alone maps lazily and would skip untouched tensors).
    first = load(open(os.path.join(a, "model.safetensors"), "rb").read())
    second = load(open(os.path.join(b, "model.safetensors"), "rb").read())
    os.makedirs(out)
    save_file(first, os.path.join(out, "model.safetensors"))
else:
    merge(config, out, options=options)
seconds = time.perf_counter() - start
time.sleep(0.02)
print(json.dumps({"seconds": seconds, "base": base, "peak": peak}))
"""


def make_parents(work: Path, preset: str, vocab: int) -> tuple[Path, Path, int]:
    import torch
    from safetensors import safe_open

    from babymerge.modeling import BabyLlavaForConditionalGeneration, make_config
    from babymerge.training.tokenizer import text_files, train_tokenizer

    corpus = work / "corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "toy.train").write_text("the cat sees a red ball .\na dog runs to the big tree .\n" * 50)
    tokenizer = train_tokenizer(text_files(corpus), vocab_size=300, min_frequency=1)  # files only; not vocab-true

    paths = []
    for seed in (1, 2):
        path = work / f"parent{seed}"
        if not (path / "model.safetensors").exists():
            torch.manual_seed(seed)
            config = make_config(preset, vocab_size=vocab, image_token_index=3, bos_token_id=1, eos_token_id=2)
            BabyLlavaForConditionalGeneration(config).save_pretrained(path)
            tokenizer.save_pretrained(path)
        paths.append(path)
    with safe_open(str(paths[0] / "model.safetensors"), "pt") as f:
        size = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys()) * 4  # float32
    return paths[0], paths[1], size


def startup(runs: int) -> dict[str, float]:
    times: dict[str, list[float]] = {"hook": [], "no_hook": []}
    for _ in range(runs):
        for name, extra in (("hook", {}), ("no_hook", {"BABYMERGE_NO_MERGEKIT_HOOK": "1"})):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True, env={**os.environ, **extra})
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--vocab", type=int, default=16000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--startup-runs", type=int, default=30)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = args.work or Path(tempfile.mkdtemp(prefix="merge_bench."))
    work.mkdir(parents=True, exist_ok=True)
    a, b, size = make_parents(work, args.preset, args.vocab)
    recipe = linear_recipe(work / "linear.yml", a, b)
    kinds = ("floor", "guarded", "mergekit", "guarded-64M-shards")
    rows: dict[str, list[dict]] = {kind: [] for kind in (*kinds, "mergekit-yaml")}
    for i in range(args.repeats):  # interleaved, so load from other jobs spreads over every variant
        for kind in kinds:
            rows[kind].append(child(CHILD, kind, work / f"{kind}{i}", a, b))
        rows["mergekit-yaml"].append({"seconds": mergekit_yaml_seconds(recipe, work / f"yaml{i}")})
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in rows.items()}
    peak = {
        f"{k} {field}": max(r["peak"][field] - r["base"][field] for r in v) * 1024
        for k, v in rows.items()
        if k != "mergekit-yaml"
        for field in ("RssAnon", "VmRSS")
    }
    start_ms = startup(args.startup_runs)
    report = {
        "model_bytes": size,
        "median_seconds": med,
        "ratio_to_floor": {k: v / med["floor"] for k, v in med.items()},
        "peak_bytes_above_imports": peak,
        "peak_ratio_to_model": {k: v / size for k, v in peak.items()},
        "startup_ms": start_ms,
        "startup_hook_cost_ms": start_ms["hook"] - start_ms["no_hook"],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
