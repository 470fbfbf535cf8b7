"""What ``babymerge diagnose`` costs on the demo's pair (the quick demo's final text-only and multimodal
checkpoints and their shared initial checkpoint).

    babymerge demo --quick --out /tmp/demo-quick --no-progress      # once, about half a minute
    python benchmarks/diagnose_cost.py /tmp/demo-quick --repeats 3

Held-out data: 1,000 new sentences of the world's text corpus (drawn with another seed than the training
text, written to a temporary file) and the world's held-out caption-matching scenes
(``extra_eval/caption_matching``, never trained on) with the demo's feature file. Each round runs the command
in a fresh process, with one torch thread and with torch's default, and prints the median wall time, the
median of the stage's own split (``seconds`` in ``diagnose.json``: reading and comparing the weights; the loss
path) and the barriers.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-c", "import sys; from babymerge.cli import main; sys.exit(main())"]


def held_out_text(path: Path, sentences: int = 1000, seed: int = 12345) -> Path:
    from babymerge.demo.world import text_sentence

    rng = random.Random(seed)
    path.write_text("\n".join(text_sentence(rng) for _ in range(sentences)) + "\n", encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, help="output folder of `babymerge demo --quick`")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    demo = args.demo
    with tempfile.TemporaryDirectory() as tmp:
        text = held_out_text(Path(tmp) / "held_out.train")
        command = [
            demo / "text_run" / "checkpoints" / "final",
            demo / "multimodal_run" / "checkpoints" / "final",
            "--base",
            demo / "init",
            "--text",
            text,
            "--captions",
            demo / "world" / "evaluation_data" / "extra_eval" / "caption_matching" / "captions.txt",
            "--features",
            demo / "features.safetensors",
            "--max-length",
            "64",  # the demo trains on 64-token blocks
            "--no-progress",
        ]
        for threads in (["--threads", "1"], []):
            walls, splits, report = [], [], {}
            for round_ in range(args.repeats):
                out = Path(tmp) / f"out{len(threads)}-{round_}"
                start = time.perf_counter()
                done = subprocess.run(
                    [*CLI, "diagnose", *map(str, command), *threads, "--out", str(out)], capture_output=True, text=True
                )
                walls.append(time.perf_counter() - start)
                if done.returncode != 0:
                    sys.exit(done.stderr)
                report = json.loads((out / "diagnose.json").read_text())
                splits.append(report["seconds"])
            label = "threads 1" if threads else "torch default threads"
            weights = statistics.median(s["weights"] for s in splits)
            loss = statistics.median(s["loss"] for s in splits)
            print(f"{label}: wall {statistics.median(walls):.2f} s (median of {args.repeats}; {walls})")
            print(f"  in-stage: weights {weights:.3f} s, loss path {loss:.3f} s")
        for source, path in report["loss"].items():
            ends = f"loss {path['loss'][0]:.4f} at alpha 0, {path['loss'][-1]:.4f} at alpha 1"
            top = f"barrier {path['barrier']:.4f} at alpha {path['barrier_alpha']:g}"
            print(f"  {source}: {path['tokens']} tokens, {ends}, {top}")
        whole = next(r for r in report["weights"] if r["layer"] == r["group"] == "all")
        print(f"  whole model: cosine {whole['cosine']:.4f}, sign conflict {whole['sign_conflict']:.4f}")


if __name__ == "__main__":
    main()
