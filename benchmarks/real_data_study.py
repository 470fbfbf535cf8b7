"""The real-data study in one command: ``babymerge demo`` with ``real_data_study.yaml`` on the shared data, three
training seeds, without and with seed pre-training, then ``babymerge diagnose`` on every seed's final pair.

The shared data is adapted to BabyLM's ``evaluation_data`` layout with symlinks under ``OUT/evaluation_data``
(nothing is copied); training reads BabyLM text (``babylm_text/train_600k``) and Flickr8k
(``flickr8k_1k/captions.txt`` beside ``images/``) in place. The arms:

- ``OUT/no_seed_pretraining``: the demo as configured (each seed's two runs start from its initialisation);
- ``OUT/seed_pretraining``: the same with ``seed_words`` (a shared text-only run of that many words per seed,
  from which both runs continue to the same total words; merges take it as their base).

``OUT/arms.md`` / ``arms.csv`` put the two arms side by side: each seed's loss barrier (held-out text, the
``*_dev.train`` files; held-out captions, the caption-matching images) and the final pair's scores and merge.

    nice -n 10 python benchmarks/real_data_study.py --shared ../shared/data --out study
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path
from typing import Any

from babymerge.demo.run import load_config, run_demo
from babymerge.evaluation.layout import build_layout
from babymerge.evaluation.uncertainty import seed_interval
from babymerge.io import atomic_file

HERE = Path(__file__).resolve().parent
ARMS = ("no_seed_pretraining", "seed_pretraining")


def held_out_text(shared: Path, out: Path) -> Path:
    """BabyLM's ``*_dev.train`` files, linked under names that ``text_files`` does not hold out."""
    folder = out / "held_out_text"
    folder.mkdir(parents=True, exist_ok=True)
    for dev in sorted((shared / "babylm_text" / "train_600k").glob("*_dev.train")):
        link = folder / dev.name.replace("_dev.train", "_held_out.train")
        if not link.exists():
            link.symlink_to(dev.resolve())
    return folder


def diagnose_pair(seed_dir: Path, base: Path, text: Path, arm_dir: Path, threads: int) -> dict[str, Any]:
    """``babymerge diagnose`` on one seed's final pair (kept when already there); its barriers and totals."""
    from babymerge.diagnose.config import DiagnoseConfig
    from babymerge.diagnose.run import diagnose

    out = seed_dir / "diagnose"
    if not (out / "diagnose.json").is_file():
        config = DiagnoseConfig(
            text_model=seed_dir / "text_run" / "checkpoints" / "final",
            multimodal_model=seed_dir / "multimodal_run" / "checkpoints" / "final",
            base=base,
            out=out,
            text=text,
            captions=arm_dir / "data" / "evaluation_data" / "extra_eval" / "caption_matching" / "captions.txt",
            features=arm_dir / "features.safetensors",
            threads=threads,
            progress=False,
        )
        diagnose(config)
    result = json.loads((out / "diagnose.json").read_text())
    whole = next(r for r in result["weights"] if r["layer"] == "all" and r["group"] == "all")
    row = {f"barrier_{source}": path["barrier"] for source, path in result["loss"].items()}
    row.update({k: whole[k] for k in ("cosine", "sign_conflict", "distance") if k in whole})
    return row


def spread(values: list[float]) -> str:
    """``mean [seed interval]`` (or the one value)."""
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else ""
    ci = seed_interval(values)
    return f"{statistics.fmean(values):.3f} [{ci.low:.3f}, {ci.high:.3f}]"


def write_arms(out: Path, rows: list[dict[str, Any]]) -> Path:
    """``arms.md`` and ``arms.csv``: the diagnostics of every arm and seed, and each arm's mean over seeds."""
    fields = sorted({k for row in rows for k in row}, key=lambda k: (k not in ("arm", "seed"), k))
    with atomic_file(out / "arms.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    measures = [k for k in fields if k not in ("arm", "seed")]
    lines = ["| arm | " + " | ".join(measures) + " |", "|---|" + "---|" * len(measures)]
    for arm in ARMS:
        mine = [r for r in rows if r["arm"] == arm]
        if mine:
            cells = [spread([r[k] for r in mine if r.get(k) is not None]) for k in measures]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    note = "Mean over seeds [95% t-interval over seeds]; per seed in arms.csv. Barrier: diagnose.md's, mean token loss."
    with atomic_file(out / "arms.md") as tmp:
        tmp.write_text("\n".join([*lines, "", note, ""]), encoding="utf-8")
    return out / "arms.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path("study"))
    parser.add_argument("--config", type=Path, default=HERE / "real_data_study.yaml")
    parser.add_argument("--seed-words", type=int, default=250_000, help="the seed pre-training arm's shared words")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument(
        "--report-only", action="store_true", help="only write arms.md/csv from the arms' finished diagnose folders"
    )
    args = parser.parse_args()
    out, shared = args.out.resolve(), args.shared.resolve()
    build_layout([shared], out / "evaluation_data")  # `babymerge data --build`'s function
    text = held_out_text(shared, out)
    seconds: dict[str, float] = {}
    rows = []
    for arm in args.arms:
        began = time.perf_counter()
        config = load_config(
            args.config,
            out=out / arm,
            data_dir=out / "evaluation_data",
            train_text=shared / "babylm_text" / "train_600k",
            images_captions=shared / "flickr8k_1k" / "captions.txt",
            seed_words=args.seed_words if arm == "seed_pretraining" else None,
        )
        if not args.report_only:
            outcome = run_demo(config)
            print(f"## {arm}\n\n{outcome['table']}\n\n{outcome['equal_words']}")
            print("\n".join(outcome["remarks"]))
            seconds[f"{arm}_demo"] = round(time.perf_counter() - began, 1)
        began = time.perf_counter()
        for seed in config.seeds or [config.seed]:
            seed_dir = config.out / f"seed-{seed}" if config.seeds else config.out
            seeded = seed_dir / "seed_run" / "checkpoints" / "final"
            base = seeded if config.seed_words else seed_dir / "init"
            rows.append({"arm": arm, "seed": seed, **diagnose_pair(seed_dir, base, text, config.out, config.threads)})
        seconds[f"{arm}_diagnose"] = round(time.perf_counter() - began, 1)
    print(write_arms(out, rows).read_text())
    if args.report_only:
        return
    with atomic_file(out / f"study_seconds_{'_'.join(args.arms)}.json") as tmp:
        tmp.write_text(json.dumps(seconds, indent=1) + "\n", encoding="utf-8")
    print("seconds:", seconds)


if __name__ == "__main__":
    main()
