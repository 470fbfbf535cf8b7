"""Fault injection for ``merge``: SIGKILL ``mergekit-yaml`` and ``babymerge merge`` at random moments, rerun,
and check that the result equals an uninterrupted merge bitwise and that nothing partial remains.

For each command: one uninterrupted merge gives the reference folder, its wall time and its staging window
(from the hidden staging folder's appearance to publishing). Then N times: start the same command into the same
output path, SIGKILL it at a random moment (kills 1, 3, 5, ...: uniform over the median wall time of the
uninterrupted runs so far; kills 2, 4, 6, ...: once the staging folder exists, uniform over the median staging
window, i.e. while mergekit merges and writes), then rerun it (uninterrupted; its timings join the medians).
Counted: kills that hit the staging window, kills after publishing (the output must then already equal the
reference), results whose every file equals the reference's bytes, stale partial folders left by the kills
and removed by the rerun, and losses (a rerun that fails, differs, or leaves a partial folder behind).

The ``train`` and ``sweep`` parts of the same idea live in ``benchmarks/fault_injection_train_sweep.py``.

Usage: python benchmarks/fault_injection.py [--n 20] [--seed 0] [--preset tiny] [--results FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "fault_injection_results.md"
RECIPE = ROOT / "merge_recipes" / "linear_alpha0.3.yml"
BIN = Path(sys.executable).parent  # the running environment's console scripts, never PATH's
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def make_parents(work: Path, preset: str) -> dict[str, Path]:
    from babymerge.training.init import init_model, save_checkpoint
    from babymerge.training.tokenizer import text_files, train_tokenizer

    corpus = work / "corpus"
    corpus.mkdir()
    (corpus / "toy.train").write_text("the cat sees a red ball .\na dog runs to the big tree .\n" * 50)
    tokenizer = train_tokenizer(text_files(corpus), vocab_size=300, min_frequency=1)
    parents = {}
    for name, seed in (("text_model", 1), ("multimodal_model", 2)):
        parents[name] = work / name
        save_checkpoint(init_model(tokenizer, preset, seed=seed), tokenizer, parents[name])
    return parents


def commands(recipe: Path, parents: dict[str, Path]) -> dict[str, callable]:
    models = [arg for name, path in parents.items() for arg in ("--model", f"{name}={path}")]
    return {
        "mergekit-yaml": lambda out: [str(BIN / "mergekit-yaml"), str(recipe), str(out), "--quiet"],
        "babymerge merge": lambda out: [str(BIN / "babymerge"), "merge", str(RECIPE), str(out), *models],
    }


def partials(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(".") and p.suffix in (".partial", ".claiming")]


def timed_run(argv: list[str], parent: Path, out: Path) -> tuple[int, str, float, float]:
    """Run to the end; return the exit code, stderr, the wall time and the length of the staging window."""
    start = time.monotonic()
    process = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    staged = published = None
    while process.poll() is None:
        now = time.monotonic() - start
        if staged is None and partials(parent):
            staged = now
        if published is None and out.exists():
            published = now
        time.sleep(0.002)
    total = time.monotonic() - start
    window = (published or total) - (staged or published or total)
    return process.returncode, process.stderr.read(), total, window


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    if names != sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def inject(name: str, argv_for, n: int, rng: random.Random, work: Path) -> dict:
    """Reference run, then ``n`` kill-and-rerun cycles, all into ``parent/out`` (the same path every time).

    Kill moments follow the medians of the uninterrupted runs so far (reference and reruns): the shared
    machine's load changes the timings from run to run."""
    parent = work / name.replace(" ", "_")
    parent.mkdir()
    out = parent / "out"
    code, err, total, window = timed_run(argv_for(out), parent, out)
    if code != 0:
        raise SystemExit(f"{name}: uninterrupted merge failed: {err[-2000:]}")
    reference = out.rename(work / f"{parent.name}_reference")
    totals, windows = [total], [window]
    counts = {"kills": 0, "in staging window": 0, "after publishing": 0, "stale partials removed by rerun": 0}
    counts |= {"results equal the reference bitwise": 0, "losses": 0}
    for i in range(n):
        process = subprocess.Popen(argv_for(out), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i % 2 == 0:
            time.sleep(rng.uniform(0, statistics.median(totals)))
        else:  # wait for the staging folder, then a uniform moment of the staging window
            while process.poll() is None and not partials(parent):
                time.sleep(0.001)
            time.sleep(rng.uniform(0, statistics.median(windows)))
        process.send_signal(signal.SIGKILL)
        process.wait()
        counts["kills"] += 1
        left = partials(parent)
        counts["in staging window"] += bool(left)
        if out.exists():  # killed after publishing: the folder must already be complete
            counts["after publishing"] += 1
            ok = not left and same_files(out, reference)
        else:
            code, err, total, window = timed_run(argv_for(out), parent, out)
            totals.append(total)
            windows.append(window)
            ok = code == 0 and not partials(parent) and same_files(out, reference)
            counts["stale partials removed by rerun"] += len(left) if ok else 0
            if not ok:
                print(f"{name} #{i}: LOSS (exit {code}) {err[-500:]}", file=sys.stderr)
        counts["results equal the reference bitwise"] += ok
        counts["losses"] += not ok
        shutil.rmtree(out, ignore_errors=True)
        for leftover in partials(parent):
            shutil.rmtree(leftover, ignore_errors=True)
    return {"seconds": statistics.median(totals), "window": statistics.median(windows), **counts}


def write_section(results: Path, text: str) -> None:
    """Replace the ``## merge`` section of the results file (other sections belong to other scripts)."""
    old = results.read_text() if results.exists() else "# Fault injection\n"
    start = old.find("\n## merge\n")
    if start == -1:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + 1)
        new = old[: start + 1] + text + (old[end:] if end != -1 else "")
    tmp = results.with_name(f".{results.name}.tmp")
    tmp.write_text(new)
    os.replace(tmp, results)


def row(label: str, cells: list[str]) -> str:
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="kills per command")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="tiny", help="babyllava size of the parents (tiny, paper)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="fault_injection_") as tmp:
        work = Path(tmp)
        parents = make_parents(work, args.preset)
        from babymerge.merging import write_recipe

        recipe = write_recipe(RECIPE, work / "recipe.yml", parents)
        rows = {name: inject(name, argv, args.n, rng, work) for name, argv in commands(recipe, parents).items()}
    load_after = os.getloadavg()
    keys = [k for k in next(iter(rows.values())) if k not in ("seconds", "window")]
    lines = [
        "## merge",
        "",
        f"Command: `python benchmarks/fault_injection.py --n {args.n} --seed {args.seed} --preset {args.preset}`  ",
        f"Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; machine: {platform.machine()}, "
        f"{os.cpu_count()}-core CPU shared with other engineers, load average {load[0]:.2f} at the start and "
        f"{load_after[0]:.2f} at the end.  ",
        f"Recipe `{RECIPE.relative_to(ROOT)}` on two `{args.preset}` babyllava parents; SIGKILL, then a rerun into "
        "the same folder; kills 1, 3, ... at a uniform moment of a whole run, kills 2, 4, ... at a uniform moment of "
        "the staging window once the staging folder exists (medians of the uninterrupted runs so far).",
        "",
        "| | " + " | ".join(rows) + " |",
        "|---|" + "---|" * len(rows),
        row("uninterrupted run, median wall time (s)", [f"{r['seconds']:.2f}" for r in rows.values()]),
        row("staging window, median length (s)", [f"{r['window']:.2f}" for r in rows.values()]),
        *(row(k, [str(r[k]) for r in rows.values()]) for k in keys),
        "",
    ]
    write_section(args.results, "\n".join(lines))
    print("\n".join(lines))
    if any(r["losses"] for r in rows.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
