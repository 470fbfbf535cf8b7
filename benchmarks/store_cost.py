"""The results store's own cost over a demo-sized sweep: appends as the sweep makes them, with the store before and
after it kept the keys it has read (issue 22).

Before, every append re-read and re-parsed the whole ``results.jsonl`` (and ``results.items.jsonl``) for the keys
present, so a sweep's store time grew with the square of its results. Now a store object parses each line once
and reads only what was appended since. Both legs replay the same generated appends (one per (point, task), the
rows and item payloads shaped like the default demo's: its two sweeps, the selection rule's scores and the
no-image controls at alpha 0 and 1) into fresh stores, alternating, in one process; the files they write are
compared byte for byte. A third leg skips ``fsync`` (the store's durability, kept) to show what remains is that.

    python benchmarks/store_cost.py --rounds 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from babymerge.sweep.items import FIELD, encode
from babymerge.sweep.store import PointKey, ResultStore, record_key

METRICS = {  # metric rows per task, as the demo's tasks report them
    "babylm_blimp_fast": ["acc", "acc_tie_neutral", "tie_fraction"],
    "babylm_caption_matching_fast": ["acc", "acc_tie_neutral", "tie_fraction"],
    "babylm_caption_matching_fast_no_image": ["acc", "acc_tie_neutral", "tie_fraction"],
    "babylm_winoground": ["acc", "acc_tie_neutral", "tie_fraction", "text_score", "image_score", "group_score"],
    "babylm_winoground_no_image": ["acc", "acc_tie_neutral", "tie_fraction", "text_score", "image_score"],
}
ITEMS = {"babylm_blimp_fast": 40, "babylm_caption_matching_fast": 40, "babylm_winoground": 40}


class Rereading(ResultStore):
    """The store as it was: the keys present are re-read from the whole file on every append."""

    def keys(self):
        return {record_key(r) for r in self.records()}


def digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def grid() -> list[tuple[str, str, float | None, str]]:
    """(pair, method, alpha, task) of the default demo, in its order: selection, sweep 1, sweep 2."""
    tasks = ["babylm_blimp_fast", "babylm_caption_matching_fast", "babylm_winoground"]
    out = [(f"text=m{i}", "checkpoint", None, "babylm_blimp_fast") for i in range(6)]
    out += [(f"multimodal=m{i}", "checkpoint", None, "babylm_caption_matching_fast") for i in range(6)]
    alphas = [round(0.1 * i, 1) for i in range(11)]
    points = [("text=final+multimodal=final", m, a) for m in ("linear", "task_arithmetic", "ties") for a in alphas]
    points += [(f"text={w}+multimodal={w}", "linear", a) for w in range(14) for a in (0.0, 0.5, 1.0)]
    for pair, method, alpha in points:
        scored = tasks + (["babylm_caption_matching_fast_no_image", "babylm_winoground_no_image"] * (alpha in (0, 1)))
        out += [(pair, method, alpha, task) for task in scored]
    return out


def appends(seed: int = 0) -> list[list[dict]]:
    """One append per (point, task): its metric rows, the primary one carrying its encoded items."""
    rng = random.Random(seed)
    out = []
    for pair, method, alpha, task in grid():
        fields = {name: digest(pair, name) for name in ("text", "multimodal", "base", "tasks", "features")}
        fields["data"] = {"fast_eval/blimp_fast": digest(task)}
        inputs = digest(fields, task)
        key = PointKey.make(pair, method, alpha, task, inputs).fields()
        extra = {"input_fields": fields, "text_path": "/x/" + pair, "multimodal_path": "/y/" + pair, "limit": None}
        items = [float(rng.random() < 0.6) for _ in range(ITEMS.get(task.removesuffix("_no_image"), 40))]
        rows = [{**extra, **key, "metric": m, "value": rng.random(), "stderr": None} for m in METRICS[task]]
        rows[0][FIELD] = encode(items)
        out.append(rows)
    return out


def leg(store_class: type[ResultStore], batches: list[list[dict]], folder: Path, fsync: bool = True) -> float:
    """Seconds to make every append; ``fsync=False`` skips the store's fsync calls (to show their share only)."""
    store = store_class(folder / "results.jsonl")
    original = os.fsync
    os.fsync = original if fsync else (lambda fd: None)
    try:
        start = time.perf_counter()
        for rows in batches:
            store.append_scored(rows)
        return time.perf_counter() - start
    finally:
        os.fsync = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    batches = appends()
    legs = {"before": (Rereading, True), "after": (ResultStore, True), "after, no fsync": (ResultStore, False)}
    seconds: dict[str, list[float]] = {name: [] for name in legs}
    files: dict[str, tuple[bytes, bytes]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for name, (store_class, fsync) in legs.items():
                folder = Path(tmp) / f"{name.replace(' ', '').replace(',', '_')}{i}"
                seconds[name].append(leg(store_class, batches, folder, fsync))
                files[name] = ((folder / "results.jsonl").read_bytes(), (folder / "results.items.jsonl").read_bytes())
    print(
        json.dumps(
            {
                "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                "load_average": os.getloadavg(),
                "appends": len(batches),
                "result_lines": sum(len(b) for b in batches),
                "seconds": {k: [round(s, 3) for s in v] for k, v in seconds.items()},
                "identical_files": len(set(files.values())) == 1,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
