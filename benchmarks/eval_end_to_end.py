"""End-to-end wall time of an evaluation, side by side in one run, on one checkpoint folder:
``babymerge eval``, plain ``lm_eval --model babyllava``, plain ``lm_eval --model hf`` and the scoring loop
alone (``BabyLlavaLM.loglikelihood`` on the task's requests, in this process), per task; plus the start-up
of ``babymerge --help`` and the start-up hook's cost on ``python -c pass``.

    python benchmarks/eval_end_to_end.py [--preset paper] [--limit 200] [--repeats 1]

With ``--repeats N`` every command runs N times (the order of the commands alternates) and medians are shown.

Each command's time to its first scored request is when lm-eval's "Running loglikelihood requests" progress
bar first appears on its stderr. ``--model hf`` stops on BLiMP and Wug before scoring anything (babymerge's
whole-sentence tasks need ``--model babyllava``), so only EWoK compares whole runs (``--tasks babylm_ewok_fast``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

TASKS = ["babylm_wug_adj", "babylm_ewok_fast", "babylm_blimp_fast"]
MARK = "Running loglikelihood requests"
LOOP = "scoring loop alone (BabyLlavaLM.loglikelihood)"
BIN = Path(sys.executable).parent


def timed_command(argv: list[str]) -> tuple[float, float | None, int]:
    """(wall seconds, seconds to the first scored request or None, exit status) of one command."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first, seen = None, b""
    while chunk := process.stderr.read1(4096):
        seen = (seen + chunk)[-200:]
        if first is None and MARK.encode() in seen:
            first = time.perf_counter() - start
    code = process.wait()
    return time.perf_counter() - start, first, code


def median_run(argv: list[str], repeats: int, env: dict | None = None) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def scoring_loop(checkpoint: Path, layout: Path, task: str, limit: int, batch_size: int) -> float:
    """Seconds of ``BabyLlavaLM.loglikelihood`` alone on the task's requests (model and requests built first)."""
    from lm_eval.tasks import TaskManager

    from babymerge.evaluation import tasks_dir
    from babymerge.evaluation.lm import BabyLlavaLM

    lm = BabyLlavaLM(pretrained=str(checkpoint), batch_size=batch_size, device="cpu")
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata={"data_dir": str(layout)})
    loaded = manager.load([task])["tasks"][task]
    loaded.build_all_requests(limit=limit)
    start = time.perf_counter()
    lm.loglikelihood(loaded.instances, disable_tqdm=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--limit", type=int, default=200, help="documents per task (Wug adjectives has 200)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="runs of every command (medians are reported)")
    parser.add_argument("--help-repeats", type=int, default=5)
    parser.add_argument("--pass-repeats", type=int, default=21)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ",".join(TASKS))
    parser.add_argument("--text", default=str(SHARED / "babylm_text/train_600k/childes.train"))
    args = parser.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]

    from babymerge.evaluation.layout import build_layout
    from babymerge.training.init import init_model, save_checkpoint
    from babymerge.training.tokenizer import train_tokenizer

    work = Path(tempfile.mkdtemp(prefix="babymerge-e2e-"))
    layout = work / "evaluation_data"
    build_layout([SHARED], layout)  # `babymerge data --build`'s function
    tokenizer = train_tokenizer([Path(args.text)], vocab_size=16000)
    checkpoint = work / "checkpoint"
    save_checkpoint(init_model(tokenizer, args.preset, seed=0), tokenizer, checkpoint)
    metadata = json.dumps({"data_dir": str(layout)})
    common = ["--limit", str(args.limit), "--batch_size", str(args.batch_size), "--device", "cpu"]

    def commands(task: str, out: Path) -> dict[str, list[str]]:
        lm_eval = [str(BIN / "lm_eval"), "run", "--tasks", task, "--metadata", metadata, *common]
        return {
            "babymerge eval": [str(BIN / "babymerge"), "eval", str(checkpoint), "--tasks", task]
            + ["--data-dir", str(layout), "--output-path", str(out / "ours"), "--limit", str(args.limit)]
            + ["--batch-size", str(args.batch_size)],
            "lm_eval --model babyllava": lm_eval
            + ["--model", "babyllava", "--model_args", f"pretrained={checkpoint}", "--output_path", str(out / "b")],
            "lm_eval --model hf": lm_eval
            + ["--model", "hf", "--model_args", f"pretrained={checkpoint},trust_remote_code=True"]
            + ["--output_path", str(out / "hf")],
        }

    runs: dict[tuple[str, str], list[tuple[float, float | None, int]]] = {}
    for repeat in range(args.repeats):
        for number, task in enumerate(tasks):
            commands_of = commands(task, work / f"{task}-{repeat}")
            names = list(commands_of) if (number + repeat) % 2 == 0 else list(commands_of)[::-1]  # alternate
            for name in names:
                wall, first, code = timed_command(commands_of[name])
                runs.setdefault((task, name), []).append((wall, first, code))
                print(f"{task} | {name} | {wall:.1f} s | first scored request {first} s | exit {code}", flush=True)
            loop = scoring_loop(checkpoint, layout, task, args.limit, args.batch_size)
            runs.setdefault((task, LOOP), []).append((loop, None, 0))
            print(f"{task} | {LOOP} | {loop:.1f} s", flush=True)

    print(f"\npreset {args.preset}, limit {args.limit} documents per task, batch size {args.batch_size}, ")
    print(f"medians of {args.repeats} run(s)\n")
    print("| task | command | wall s | start-up: s to first scored request | exit |\n|---|---|---|---|---|")
    for (task, name), values in runs.items():
        wall = statistics.median(v[0] for v in values)
        firsts = [v[1] for v in values if v[1] is not None]
        first = f"{statistics.median(firsts):.1f}" if firsts else ""
        print(f"| {task} | {name} | {wall:.1f} | {first} | {'/'.join(str(v[2]) for v in values)} |")
    for task in tasks:
        hf = [v[0] for v in runs[(task, "lm_eval --model hf")]]
        for name in ("babymerge eval", "lm_eval --model babyllava", LOOP):
            ratios = [v[0] / h for v, h in zip(runs[(task, name)], hf, strict=True)]
            print(f"{task}: {name} / lm_eval --model hf, per run: {', '.join(f'{r:.2f}' for r in ratios)}")

    helps = median_run([str(BIN / "babymerge"), "--help"], args.help_repeats)
    lm_eval_help = median_run([str(BIN / "lm_eval"), "--help"], args.help_repeats)
    with_hook, without = [], []
    off = {**os.environ, "BABYMERGE_NO_MERGEKIT_HOOK": "1"}
    for _ in range(args.pass_repeats):  # alternating, so load changes hit both alike
        with_hook.append(median_run([sys.executable, "-c", "pass"], 1))
        without.append(median_run([sys.executable, "-c", "pass"], 1, env=off))
    print(f"\n`babymerge --help`: median of {args.help_repeats}: {helps:.2f} s (lm_eval --help: {lm_eval_help:.2f} s)")
    print(
        f"`python -c pass`: median of {args.pass_repeats}: {1000 * statistics.median(with_hook):.1f} ms with the "
        f"hook, {1000 * statistics.median(without):.1f} ms without: hook cost "
        f"{1000 * (statistics.median(with_hook) - statistics.median(without)):.1f} ms"
    )


if __name__ == "__main__":
    main()
