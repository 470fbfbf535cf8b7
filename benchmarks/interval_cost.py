"""The cost of the statistics (issue 22): one sweep grid scored in one process with and without per-document items
stored and the report's intervals and paired tests, legs alternating on one model instance and one scorer.

"with": the scorer keeps each task's metric items, the store writes them to ``results.items.jsonl``, and the
report computes every interval, every paired comparison and the bands. "without": neither; the same report files
without intervals. Besides the two legs' wall times (noisy on a shared machine), the statistics' own seconds are
counted: time in ``evaluate.item_scores`` and in sidecar appends, plus the report's extra time. A warm-up
leg first builds lm-eval's requests (both legs then reuse them). Models and data as in ``sweep_speed.py``
(seeded random checkpoints of the preset, BLiMP fast read in place from the shared data).

    python benchmarks/interval_cost.py --preset tiny --points 11 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_speed import TASK, alphas, data_dir, environment, make_models  # noqa: E402

SPENT = {"items_s": 0.0}  # seconds in the statistics' own code while scoring: keeping items, the sidecar


def timed(function):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SPENT["items_s"] += time.perf_counter() - start

    return wrapper


def instrument() -> None:
    """Count the time of ``item_scores`` (encoding the items) and of every sidecar append."""
    from babymerge.sweep import evaluate
    from babymerge.sweep.store import ResultStore

    evaluate.item_scores = timed(evaluate.item_scores)
    append = ResultStore.append

    def counted_append(self, records):
        return (timed(append) if self.path.name.endswith(".items.jsonl") else append)(self, records)

    ResultStore.append = counted_append


def leg(sweep, keep: bool, out: Path) -> dict[str, float]:
    """Score the grid into a fresh store and write the whole report; seconds of each part."""
    from babymerge.sweep import items
    from babymerge.sweep.report import write_report

    sweep.scorer.keep_items = keep
    items.interval_of.cache_clear()
    items.comparison_of.cache_clear()
    SPENT["items_s"] = 0.0
    start = time.perf_counter()
    records = sweep.run()
    swept = time.perf_counter() - start
    write_report(records, out)
    return {"sweep_s": swept, "report_s": time.perf_counter() - start - swept, "items_s": SPENT["items_s"]}


def run(args: argparse.Namespace, work: Path) -> dict:
    import torch

    from babymerge.sweep.run import Sweep, SweepConfig

    torch.set_num_threads(args.threads)
    models = make_models(work, args.preset, args.vocab_size)

    def config(name: str) -> SweepConfig:
        return SweepConfig(
            text=models["text"],
            multimodal=models["multimodal"],
            base=models["base"],
            methods=args.methods.split(","),
            alphas=alphas(args.points),
            tasks=[TASK],
            pairing=["final"],
            store=work / name / "results.jsonl",
            data_dir=data_dir(work),
            limit=args.limit,
            batch_size=args.batch_size,
        )

    instrument()
    for old in work.glob("*/results.jsonl"):  # every leg scores into a fresh store
        shutil.rmtree(old.parent)
    first = Sweep(config("warmup"), progress=False)
    leg(first, True, work / "warmup")  # lm-eval's requests built once for every later leg; matplotlib loaded
    times: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
    for repeat in range(args.repeats):
        for name in ("without", "with"):
            sweep = Sweep(config(f"{name}_{repeat}"), progress=False, share_from=first)
            times[name].append(leg(sweep, name == "with", work / f"{name}_{repeat}"))
    total = {name: sum(t["sweep_s"] + t["report_s"] for t in legs) for name, legs in times.items()}
    # the statistics' own seconds: items kept and stored while scoring, and the report's extra time
    extra_report = sum(t["report_s"] for t in times["with"]) - sum(t["report_s"] for t in times["without"])
    statistics = sum(t["items_s"] for t in times["with"]) + extra_report
    return {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{args.threads}",
        "preset": args.preset,
        "points": args.points * len(args.methods.split(",")),
        "task": TASK,
        "limit": args.limit,
        "legs": {name: [{k: round(v, 2) for k, v in t.items()} for t in legs] for name, legs in times.items()},
        "without_s": round(total["without"], 2),
        "with_s": round(total["with"], 2),
        "added_percent_wall": round(100 * (total["with"] / total["without"] - 1), 2),
        "statistics_s": round(statistics, 2),
        "statistics_per_point_s": round(statistics / args.repeats / (args.points * len(args.methods.split(","))), 3),
        "statistics_percent": round(100 * statistics / total["without"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--points", type=int, default=11, help="alphas per method")
    parser.add_argument("--methods", default="linear,task_arithmetic")
    parser.add_argument("--repeats", type=int, default=2, help="legs of each kind, alternating")
    parser.add_argument("--limit", type=int, help="BLiMP fast pairs (documents) per point; default all 13,400")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vocab-size", type=int, default=16000)
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    os.environ.update(environment())
    work = args.work or Path(tempfile.mkdtemp(prefix="babymerge-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(args, work), indent=1))


if __name__ == "__main__":
    main()
