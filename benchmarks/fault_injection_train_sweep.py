"""Fault injection: SIGKILL ``babymerge train`` and ``babymerge sweep`` at random moments, rerun, and check
that each rerun ends with exactly the results of an uninterrupted run and leaves nothing partial behind.

    python benchmarks/fault_injection_train_sweep.py --kills 20 \
        --results benchmarks/fault_injection_train_sweep_results.md

Tiny presets on the demo's synthetic world (no ../shared needed). For each command: one uninterrupted
reference run (its wall time T), then ``--kills`` trials: start the command in a fresh folder, SIGKILL it after
a random delay after it first wrote resumable state (uniform within the rest of the reference run's time),
rerun it to completion, and compare with the reference (a first, untimed run fills the shared caches):

- train: ``checkpoints/final`` weights bitwise equal, ``loss.jsonl`` equal, same milestone folders;
- sweep: every stored (key, metric) value equal, no key stored twice, the same table.

"Partial" is any ``*.partial`` staging file or folder, or a Trainer checkpoint that fails
``babymerge.training.run.incomplete`` after the rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def prepare(root: Path) -> dict[str, Path]:
    from babymerge.demo.world import QUICK, generate_world
    from babymerge.training.init import init_model, save_checkpoint
    from babymerge.training.tokenizer import text_files, train_tokenizer

    world = generate_world(root / "world", QUICK)
    corpus = next(p for p in world.rglob("*.train")).parent
    tokenizer = train_tokenizer(text_files(corpus), vocab_size=300, min_frequency=1)
    paths = {"world": world, "corpus": corpus}
    for name, seed in (("init", 0), ("text", 1), ("multimodal", 2)):
        paths[name] = root / name
        save_checkpoint(init_model(tokenizer, "tiny", seed=seed), tokenizer, paths[name])
    return paths


def train_cmd(p: dict[str, Path], out: Path) -> list[str]:
    args = ["train", "--mode", "text", "--init", str(p["init"]), "--text", str(p["corpus"]), "--out", str(out)]
    args += ["--max-length", "32", "--batch-size", "4", "--max-steps", "24", "--save-steps", "3"]
    args += ["--logging-steps", "3", "--milestone-unit", "300", "--cache-dir", str(out.parent / "cache"), "--quiet"]
    return [str(BIN / "babymerge"), *args]


def sweep_cmd(p: dict[str, Path], out: Path) -> list[str]:
    args = ["sweep", "--text", str(p["text"]), "--multimodal", str(p["multimodal"]), "--base", str(p["init"])]
    args += ["--methods", "linear,dare_ties", "--param", "dare_ties.density=0.5", "--alphas", "0,0.5,1"]
    args += ["--tasks", "babylm_blimp_fast", "--data-dir", str(p["world"] / "evaluation_data"), "--limit", "30"]
    return [str(BIN / "babymerge"), *args, "--out", str(out), "--no-progress"]


def timed_reference(cmd: list[str], out: Path, command: str) -> tuple[float, float]:
    """Run uninterrupted; return (seconds until resumable state first existed, total seconds)."""
    start = time.perf_counter()
    process = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = None
    while process.poll() is None:
        if first is None and first_state_written(out, command):
            first = time.perf_counter() - start
        time.sleep(0.05)
    if process.returncode != 0:
        raise SystemExit(f"reference run failed: {process.stderr.read()[-500:]}")
    total = time.perf_counter() - start
    return (first or 0.2 * total), total


def run(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"rerun failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - start, done.stderr


def kill_after_state(cmd: list[str], out: Path, command: str, delay: float) -> bool:
    """Start ``cmd``, wait until it has written resumable state, SIGKILL it ``delay`` s later; False if it
    finished first."""
    process = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None and not first_state_written(out, command):
        time.sleep(0.02)
    try:
        process.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True


def train_result(out: Path) -> dict:
    from safetensors.torch import load_file

    weights = load_file(out / "checkpoints" / "final" / "model.safetensors")
    return {
        "weights": {k: v.numpy().tobytes() for k, v in weights.items()},
        "loss": (out / "loss.jsonl").read_text(),
        "milestones": sorted(p.name for p in (out / "checkpoints").iterdir()),
    }


def sweep_result(out: Path) -> dict:
    from babymerge.sweep.store import ResultStore, record_key

    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines() if x.endswith("}")]
    counts = Counter(record_key(r) for r in lines)
    values = {record_key(r): r["value"] for r in ResultStore(out / "results.jsonl").records()}
    table = (out / "sweep_table.md").read_text()
    return {"values": values, "duplicates": sum(c > 1 for c in counts.values()), "table": table}


def partial_left(out: Path) -> list[str]:
    from babymerge.training.run import incomplete

    left = [str(p) for p in out.rglob("*.partial")]
    left += [str(c) for c in out.glob("trainer/checkpoint-*") if incomplete(c)]
    return left


def first_state_written(out: Path, command: str) -> bool:
    """Whether the killed run had already written resumable state (a Trainer checkpoint, a stored result)."""
    if command == "train":
        return any((out / "trainer").glob("checkpoint-*"))
    return (out / "results.jsonl").is_file() and (out / "results.jsonl").stat().st_size > 0


def inject(command: str, p: dict[str, Path], root: Path, kills: int, rng: random.Random, deadline: float) -> dict:
    make = train_cmd if command == "train" else sweep_cmd
    result = train_result if command == "train" else sweep_result
    run(make(p, root / f"{command}_warmup"))  # fills the tokenisation and dataset caches the trials share
    reference_out = root / f"{command}_reference"
    first_s, reference_s = timed_reference(make(p, reference_out), reference_out, command)
    reference = result(reference_out)
    stats = Counter()
    trial = -1
    while stats["kills"] < kills and stats["trials"] < 3 * kills:  # a run that ends before its delay is no kill
        trial += 1
        if time.monotonic() > deadline:
            break
        out = root / f"{command}_{trial}"
        stats["trials"] += 1
        if kill_after_state(make(p, out), out, command, rng.uniform(0, reference_s - first_s)):
            stats["kills"] += 1
        _, stderr = run(make(p, out))
        stats["notices_cut_checkpoint"] += "cut mid-write" in stderr
        got = result(out)
        if command == "sweep":
            stats["duplicate_keys"] += got["duplicates"]
            got["duplicates"] = reference["duplicates"]
        stats["equal"] += got == reference
        stats["losses"] += got != reference
        stats["partial_left"] += len(partial_left(out))
    return {"reference_s": round(reference_s, 1), "first_state_s": round(first_s, 1), **stats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kills to deliver per command (at most 3x as many runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/babymerge_fault_injection"))
    parser.add_argument("--results", type=Path)
    parser.add_argument("--commands", default="train,sweep")
    parser.add_argument("--budget-s", type=float, default=1800, help="stop starting trials after this long")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    args.work.mkdir(parents=True, exist_ok=False)
    load_before = os.getloadavg()
    start = time.perf_counter()
    paths = prepare(args.work)
    commands = args.commands.split(",")
    rows = {}
    for i, command in enumerate(commands):  # each command gets an equal share of what is left of the budget
        share = (args.budget_s - (time.perf_counter() - start)) / (len(commands) - i)
        rows[command] = inject(command, paths, args.work, args.kills, rng, time.monotonic() + share)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    print(json.dumps(rows, indent=1))
    if args.results:
        cmd = "python benchmarks/fault_injection_train_sweep.py " + " ".join(sys.argv[1:])
        keys = ["trials", "kills", "equal", "losses", "partial_left", "notices_cut_checkpoint"]
        lines = [
            "# Fault injection: train and sweep killed at random moments",
            "",
            f"- command: `{cmd}`",
            f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; wall {wall / 60:.1f} min",
            f"- machine: {os.cpu_count()}-core CPU, no GPU; load average (1/5/15 min) before "
            f"{'/'.join(f'{x:.1f}' for x in load_before)}, after {'/'.join(f'{x:.1f}' for x in load_after)} "
            "(shared with other engineers)",
            "",
            "| command | reference run (s) | " + " | ".join(keys) + " | duplicate_keys |",
            "|---|---|" + "---|" * (len(keys) + 1),
        ]
        for command, row in rows.items():
            cells = [str(row.get(k, 0)) for k in keys]
            cells.append(str(row.get("duplicate_keys", 0)) if command == "sweep" else "-")
            lines.append(f"| {command} | {row['reference_s']} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "trials: runs started, each to be killed once and rerun to completion (none after the budget);",
            "kills: SIGKILLs delivered, each after the run had written resumable state (a Trainer checkpoint or a",
            "stored result), at a random delay within the rest of the reference run's time (a run that ended first:",
            "no kill);",
            "equal / losses: reruns whose results equal / differ from the uninterrupted reference;",
            "partial_left: `*.partial` paths or incomplete Trainer checkpoints left after the rerun;",
            "notices_cut_checkpoint: reruns that skipped a Trainer checkpoint cut mid-write.",
        ]
        args.results.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
