"""What Fisher statistics cost for a paper-size babyllava (6 layers, width 768, 16k vocabulary), beside the
Fisher merge they serve and a linear merge of the same two checkpoints.

    python benchmarks/fisher_cost.py --rows 16 --threads 1 2

Two paper-size checkpoints are initialised (seeds 0 and 1, a tokenizer trained on the BabyLM text in
../shared/data, as ``babymerge tokenizer`` and ``babymerge init --preset paper`` make them). For each thread
count, ``compute_fisher`` runs on ``--rows`` rows of 150 words of BabyLM dev text (cut to ``--max-length`` tokens) on
the loaded model: seconds per 1k scored tokens. Then, at the last thread count: ``fisher_file`` end to end
(load, compute, write) for both checkpoints, and ``mergekit-yaml``'s entry function on ``merge_recipes/fisher.yml``
and on ``linear_alpha0.5.yml`` (the merge alone, statistics already on disk).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TEXT = REPO.parent / "shared" / "data" / "babylm_text" / "train_600k"


def paper_checkpoints(work: Path) -> tuple[Path, Path]:
    from babymerge.training.init import init_model, save_checkpoint
    from babymerge.training.tokenizer import text_files, train_tokenizer

    tokenizer = train_tokenizer(text_files(TEXT), vocab_size=16_000, progress=False)
    folders = []
    for seed in (0, 1):
        folder = work / f"paper{seed}"
        save_checkpoint(init_model(tokenizer, "paper", seed=seed), tokenizer, folder)
        folders.append(folder)
    return folders[0], folders[1]


def rows_of_text(out: Path, rows: int, words: int = 150) -> Path:
    """``rows`` lines of ``words`` words from a BabyLM dev file (its text is one long line), cut to length later."""
    text = (TEXT / "bnc_spoken_dev.train").read_text(encoding="utf-8").split()
    out.write_text("\n".join(" ".join(text[i * words : (i + 1) * words]) for i in range(rows)) + "\n")
    return out


def statistics_cost(folder: Path, lines: list[str], args: argparse.Namespace) -> None:
    """``compute_fisher`` on the loaded model at each thread count: seconds per 1k scored tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from babymerge.merging.fisher import compute_fisher

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    print(f"checkpoint: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
    for threads in args.threads:
        torch.set_num_threads(threads)
        compute_fisher(model, tokenizer, lines[:1], max_length=args.max_length, progress=False)  # warm-up
        start = time.perf_counter()
        _, rows, tokens = compute_fisher(model, tokenizer, lines, max_length=args.max_length, progress=False)
        seconds = time.perf_counter() - start
        print(
            f"compute_fisher, {threads} thread(s): {rows} rows, {tokens} scored tokens, {seconds:.1f} s "
            f"= {seconds / tokens * 1000:.1f} s per 1k tokens"
        )


def main() -> None:
    from mergekit.scripts.run_yaml import main as mergekit_yaml

    from babymerge.merging.fisher import fisher_file
    from babymerge.merging.gram import read_text_sample
    from babymerge.merging.recipes import write_recipe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}")
    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sample = rows_of_text(work / "sample.txt", args.rows)
        lines = read_text_sample(sample, args.rows)
        text, mm = paper_checkpoints(work)
        statistics_cost(text, lines, args)
        for folder in (text, mm):
            start = time.perf_counter()
            out = fisher_file(folder, text=sample, max_samples=args.rows, max_length=args.max_length, progress=False)
            seconds = time.perf_counter() - start
            print(f"fisher_file end to end ({folder.name}): {seconds:.1f} s, {out.stat().st_size / 1e6:.0f} MB written")
        paths = {"text_model": text, "multimodal_model": mm}
        for recipe in ("fisher.yml", "linear_alpha0.5.yml"):
            rendered = write_recipe(REPO / "merge_recipes" / recipe, work / recipe, paths)
            start = time.perf_counter()
            mergekit_yaml([str(rendered), str(work / recipe.removesuffix(".yml")), "--quiet"], standalone_mode=False)
            print(f"mergekit-yaml {recipe}: {time.perf_counter() - start:.1f} s")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
