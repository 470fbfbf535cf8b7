"""What the demo's random-backbone image features carry: linear probes on the world's scenes.

Generates the demo's world, extracts features exactly as ``babymerge demo`` does (random tiny DINOv2, hidden
layer -2, CLS dropped, mean over patches), and fits a logistic-regression probe per attribute on 3/4 of the
images, scored on the rest, beside the majority-class rate. Training scenes hold one thing; Winoground-style
scenes hold two, and the probe asks for the colour of the first-named thing (its position).

    python benchmarks/world_probe.py --out /tmp/world-probe
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from babymerge.demo.world import COLOURS, SHAPES, SIZES, WorldSize, generate_world
from babymerge.features.backbone import random_dinov2
from babymerge.features.extract import extract_features
from babymerge.features.images import list_images
from babymerge.features.store import FeatureFile


def probe(x: np.ndarray, labels: list[str]) -> tuple[float, float]:
    """Held-out accuracy of a linear probe, and the majority class's share of the held-out part."""
    y = np.array(labels)
    n = len(y) * 3 // 4
    mean, std = x[:n].mean(0), x[:n].std(0) + 1e-6
    clf = LogisticRegression(max_iter=3000).fit((x[:n] - mean) / std, y[:n])
    majority = Counter(y[n:]).most_common(1)[0][1] / len(y[n:])
    return clf.score((x[n:] - mean) / std, y[n:]), majority


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("world-probe"))
    parser.add_argument("--scenes", type=int, default=2000)
    args = parser.parse_args()
    world = args.out / "world"
    if not world.exists():
        generate_world(world, WorldSize(scenes=args.scenes, matching_items=800, text_sentences=10))
    path = args.out / "features.safetensors"
    if not path.exists():
        extract_features(list_images(world / "images"), path, random_dinov2(0), progress=False)
    features = FeatureFile.load(path)

    def matrix(images: list[str]) -> np.ndarray:
        return np.stack([features.features[features.index[i]].reshape(-1).float().numpy() for i in images])

    with open(world / "captions.txt", newline="") as handle:
        rows = list(csv.DictReader(handle))
    words = [r["caption"].lower().rstrip(".").split() for r in rows]  # "a big red ball"
    x = matrix([r["image"] for r in rows])
    print(f"one-thing scenes: {len(rows)}; {len(COLOURS)} colours, {len(SHAPES)} shapes, {len(SIZES)} sizes")
    for name, labels in (
        ("colour", [w[2] for w in words]),
        ("shape", [w[3] for w in words]),
        ("size", [w[1] for w in words]),
    ):
        accuracy, majority = probe(x, labels)
        print(f"  {name:<7} probe {accuracy:.3f}   majority {majority:.3f}")
    wino = [
        json.loads(line) for line in (world / "evaluation_data/full_eval/winoground_filtered/winoground.jsonl").open()
    ]
    x = matrix([f"{r['image_idx']}_{r['image_key']}.png" for r in wino])
    first = [r["caption_0"].lower().split()[1] for r in wino]  # "a red ball is left of a blue box"
    both = ["+".join(sorted(w for w in r["caption_0"].lower().rstrip(".").split() if w in COLOURS)) for r in wino]
    print(f"two-thing (Winoground-style) scenes: {len(wino)}")
    for name, labels in (("colour pair (unordered)", both), ("colour of the first-named thing", first)):
        accuracy, majority = probe(x, labels)
        print(f"  {name:<31} probe {accuracy:.3f}   majority {majority:.3f}")


if __name__ == "__main__":
    main()
