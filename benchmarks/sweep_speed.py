"""The in-memory sweep against the loop a user would otherwise write, and its per-point overhead.

``loop``: on one grid and task, time (a) ``babymerge sweep`` (one process: merges in memory, lm-eval on one
model instance) against (b) per point ``mergekit-yaml`` then ``babymerge eval`` (lm-eval's own CLI with the
babyllava model type), check that both give the same scores, and report the ratio of wall times.

``overhead``: in one process, the sweep's cost per point (merge + load_state_dict + lm-eval scoring) against
the model's forward passes alone on the same requests, batched as lm-eval's HFLM batches them (full logits,
no scoring), timed right after each point with the same weights.

Models are seeded random babyllava checkpoints of the chosen preset sharing one tokenizer trained on BabyLM
text: speed does not depend on training. BLiMP fast is read in place from the shared data directory.

    python benchmarks/sweep_speed.py loop --preset tiny --points 11
    python benchmarks/sweep_speed.py overhead --preset paper --points 3 --limit 1000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TASK = "babylm_blimp_fast"
CLI = [sys.executable, "-c", "import sys; from babymerge.cli import main; sys.exit(main())"]
MERGEKIT_YAML = str(Path(sys.executable).with_name("mergekit-yaml"))  # the running environment's, not PATH's


def environment() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def make_models(work: Path, preset: str, vocab_size: int) -> dict[str, Path]:
    """A tokenizer trained on BabyLM CHILDES text, and base / text / multimodal checkpoints (seeds 0, 1, 2)."""
    from babymerge.training.init import init_model, save_checkpoint
    from babymerge.training.tokenizer import train_tokenizer

    tokenizer = train_tokenizer([SHARED / "babylm_text" / "train_600k" / "childes.train"], vocab_size)
    paths = {}
    for role, seed in (("base", 0), ("text", 1), ("multimodal", 2)):
        paths[role] = work / role
        if not paths[role].exists():
            save_checkpoint(init_model(tokenizer, preset, seed=seed), tokenizer, paths[role])
    return paths


def data_dir(work: Path) -> Path:
    """A BabyLM evaluation_data view whose fast_eval/blimp_fast links to the shared BLiMP fast files."""
    link = work / "evaluation_data" / "fast_eval" / "blimp_fast"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(SHARED / "blimp" / "babylm_blimp_fast", target_is_directory=True)
    return work / "evaluation_data"


def alphas(points: int) -> list[float]:
    return [round(i / (points - 1), 6) for i in range(points)]


def run_loop(args: argparse.Namespace, work: Path) -> dict:
    from babymerge.sweep.merge import MergeSpec

    models = make_models(work, args.preset, args.vocab_size)
    evaluation = data_dir(work)
    grid = alphas(args.points)
    limit = ["--limit", str(args.limit)] if args.limit else []
    common = ["--data-dir", str(evaluation), "--batch-size", str(args.batch_size)]

    start = time.perf_counter()
    cmd = CLI + ["sweep", "--text", str(models["text"]), "--multimodal", str(models["multimodal"])]
    cmd += ["--methods", args.method, "--alphas", ",".join(map(str, grid)), "--tasks", TASK]
    cmd += ["--out", str(work / "sweep"), "--no-progress", *common, *limit]
    subprocess.run(cmd, check=True, env=environment(), capture_output=True)
    in_memory = time.perf_counter() - start
    swept = {
        r["alpha"]: r["value"]
        for r in map(json.loads, (work / "sweep" / "results.jsonl").read_text().splitlines())
        if r["task"] == TASK and r["metric"] == "acc"
    }

    start = time.perf_counter()
    looped = {}
    for alpha in grid:
        point = work / f"loop_{alpha:g}"
        config = MergeSpec(method=args.method, alpha=alpha).mergekit_config(models["text"], models["multimodal"])
        (work / f"merge_{alpha:g}.yml").write_text(yaml.safe_dump(config))
        merge = [MERGEKIT_YAML, str(work / f"merge_{alpha:g}.yml"), str(point / "model"), "--trust-remote-code"]
        subprocess.run(merge, check=True, env=environment(), capture_output=True, cwd=work)
        evaluate = CLI + ["eval", str(point / "model"), "--tasks", TASK, "--output-path", str(point / "eval")]
        subprocess.run(evaluate + common + limit, check=True, env=environment(), capture_output=True)
        results = json.loads(max((point / "eval").rglob("results_*.json")).read_text())
        looped[alpha] = results["results"][TASK]["acc,none"]
    loop = time.perf_counter() - start
    same = all(abs(swept[a] - looped[a]) < 1e-9 for a in grid)
    return {
        "preset": args.preset,
        "points": args.points,
        "task": TASK,
        "limit": args.limit,
        "in_memory_s": round(in_memory, 1),
        "loop_s": round(loop, 1),
        "speedup": round(loop / in_memory, 2),
        "same_scores": same,
        "scores": {f"{a:g}": [round(swept[a], 6), round(looped[a], 6)] for a in grid},
    }


def lm_eval_batches(requests: list, batch_size: int) -> list:
    """The inputs of HFLM's model calls for these requests: longest first, right-padded, last token dropped."""
    import torch

    tokens = sorted((r[1] + r[2] for r in requests), key=lambda t: (-len(t), tuple(t)))
    batches = []
    for begin in range(0, len(tokens), batch_size):
        chunk = [t[:-1] for t in tokens[begin : begin + batch_size]]
        ids = torch.zeros(len(chunk), max(map(len, chunk)), dtype=torch.long)
        for row, t in enumerate(chunk):
            ids[row, : len(t)] = torch.tensor(t)
        batches.append(ids)
    return batches


def forward_alone(lm, batches: list) -> float:
    """Seconds of the model's forward passes (all logits, as lm-eval's HFLM computes them) over ``batches``."""
    begin = time.perf_counter()
    for ids in batches:
        lm._model_call(ids)
    return time.perf_counter() - begin


def run_overhead(args: argparse.Namespace, work: Path) -> dict:
    import torch

    from babymerge.sweep.run import Sweep, SweepConfig

    torch.set_num_threads(os.cpu_count() or 1)
    models = make_models(work, args.preset, args.vocab_size)
    config = SweepConfig(
        text=models["text"],
        multimodal=models["multimodal"],
        methods=[args.method],
        alphas=alphas(args.points),
        tasks=[TASK],
        store=work / "overhead" / "results.jsonl",
        data_dir=data_dir(work),
        limit=args.limit,
        batch_size=args.batch_size,
    )
    sweep = Sweep(config, progress=False)
    lm = sweep.scorer.lm
    captured: list = []
    original = lm._loglikelihood_tokens

    def capture(requests, *a, **k):
        captured.extend(requests)
        return original(requests, *a, **k)

    lm._loglikelihood_tokens = capture
    pair = sweep.pairs()[0]
    sweep.run_point(pair, config.specs()[0], [TASK])  # warm-up (tokenisation, prefix plan, allocator)
    lm._loglikelihood_tokens = original
    batches = lm_eval_batches(captured, args.batch_size)
    rows = []
    for spec in config.specs():
        begin = time.perf_counter()
        sweep.run_point(pair, spec, [TASK])
        total = time.perf_counter() - begin
        forward = forward_alone(lm, batches)
        rows.append({"alpha": spec.alpha, "point_s": round(total, 3), "forward_s": round(forward, 3)})
    point = sum(r["point_s"] for r in rows)
    model_time = sum(r["forward_s"] for r in rows)
    params = sum(p.numel() for p in sweep.model.parameters())
    return {
        "preset": args.preset,
        "parameters": params,
        "points": len(rows),
        "task": TASK,
        "limit": args.limit,
        "per_point_s": round(point / len(rows), 3),
        "forward_per_point_s": round(model_time / len(rows), 3),
        "ratio": round(point / model_time, 3),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["loop", "overhead"])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--points", type=int, default=11)
    parser.add_argument("--method", default="linear")
    parser.add_argument("--limit", type=int, help="BLiMP fast pairs (documents) per point; default all 13,400")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--vocab-size", type=int, default=16000)
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    os.environ.update(environment())
    work = args.work or Path(tempfile.mkdtemp(prefix="babymerge-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    result = run_loop(args, work) if args.mode == "loop" else run_overhead(args, work)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
