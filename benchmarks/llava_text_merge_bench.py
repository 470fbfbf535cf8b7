"""A stock LLaVA's language model merged with a text-only Llama, against the safetensors read/write floor.

One run measures, side by side on the same parents (written once, then read from the page cache), each variant in
a fresh child process, interleaved over the repeats:
- floor: read every byte of both inputs into memory (``safetensors.torch.load`` of the file bytes) and write one
  model of the output's size with ``save_file``: the I/O any merge must do, with no arithmetic;
- guarded: mergekit's ``run_merge`` after imports, i.e. babymerge's LLaVA + text-only path (checks, pair
  architecture, NaN/Inf scan at load, guard, atomic rename), ``linear`` 0.5/0.5, LLaVA output;
- the ``mergekit-yaml`` process for the same recipe, wall clock from start to exit (imports included);
- peak memory above the after-imports baseline (RssAnon: allocated; sampled every 5 ms) against the output size.

Usage: python benchmarks/llava_text_merge_bench.py [--repeats 3] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from merge_timing import child, linear_recipe, mergekit_yaml_seconds

CHILD = r"""
import json, sys, threading, time, os
kind, out, recipe = sys.argv[1:4]
peak = {"RssAnon": 0}
def sample():
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                peak["RssAnon"] = max(peak["RssAnon"], int(line.split()[1]))
        time.sleep(0.005)
import torch, yaml
from safetensors.torch import load, save_file
models = [m["model"] for m in yaml.safe_load(open(recipe))["models"]]
if kind == "guarded":
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge
    config = MergeConfiguration.model_validate(yaml.safe_load(open(recipe)))
    options = MergeOptions(quiet=True)
threading.Thread(target=sample, daemon=True).start()
time.sleep(0.05)
base = dict(peak)
start = time.perf_counter()
if kind == "floor":
    # Read every byte of both inputs (load_file alone maps lazily and would skip untouched tensors).
    tensors = [load(open(os.path.join(m, "model.safetensors"), "rb").read()) for m in models]
    os.makedirs(out)
    save_file(tensors[0], os.path.join(out, "model.safetensors"))
else:
    run_merge(config, out, options=options)
seconds = time.perf_counter() - start
time.sleep(0.02)
print(json.dumps({"seconds": seconds, "base": base, "peak": peak}))
"""


def make_parents(work: Path) -> tuple[Path, Path]:
    """A LLaVA (CLIP ViT tower, 4 layers of width 768; Llama LM of the paper's size, vocabulary 16,000) and a
    ``LlamaForCausalLM`` of the same language-model shape, both float32, saved by transformers."""
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlamaForCausalLM, LlavaConfig, LlavaForConditionalGeneration

    text = LlamaConfig(
        vocab_size=16000, hidden_size=768, intermediate_size=3072, num_hidden_layers=6, num_attention_heads=12
    )
    vision = CLIPVisionConfig(
        hidden_size=768, intermediate_size=3072, num_hidden_layers=4, num_attention_heads=12, image_size=224
    )
    llava, llama = work / "llava", work / "llama"
    if not (llava / "model.safetensors").exists():
        torch.manual_seed(1)
        LlavaForConditionalGeneration(LlavaConfig(vision_config=vision, text_config=text)).save_pretrained(llava)
    if not (llama / "model.safetensors").exists():
        torch.manual_seed(2)
        LlamaForCausalLM(text).save_pretrained(llama)
    return llava, llama


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = args.work or Path(tempfile.mkdtemp(prefix="llava_text_bench."))
    work.mkdir(parents=True, exist_ok=True)
    llava, llama = make_parents(work)
    recipe = linear_recipe(work / "linear.yml", llava, llama)
    sizes = {p.name: (p / "model.safetensors").stat().st_size for p in (llava, llama)}
    rows: dict[str, list[dict]] = {"floor": [], "guarded": [], "mergekit-yaml": []}
    for i in range(args.repeats):  # interleaved, so load from other jobs spreads over every variant
        for kind in ("floor", "guarded"):
            rows[kind].append(child(CHILD, kind, work / f"{kind}{i}", recipe))
        rows["mergekit-yaml"].append({"seconds": mergekit_yaml_seconds(recipe, work / f"yaml{i}")})
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in rows.items()}
    measured = {k: v for k, v in rows.items() if k != "mergekit-yaml"}
    peak = {k: max(r["peak"]["RssAnon"] - r["base"]["RssAnon"] for r in v) * 1024 for k, v in measured.items()}
    report = {
        "file_bytes": sizes,
        "median_seconds": med,
        "all_seconds": {k: [round(r["seconds"], 3) for r in v] for k, v in rows.items()},
        "ratio_to_floor": {k: v / med["floor"] for k, v in med.items()},
        "median_paired_ratio_to_floor": {  # each round's variant over the same round's floor
            k: statistics.median(r["seconds"] / f["seconds"] for r, f in zip(v, rows["floor"], strict=True))
            for k, v in rows.items()
        },
        "peak_rss_anon_bytes_above_imports": peak,
        "peak_ratio_to_output": {k: v / sizes["llava"] for k, v in peak.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
