"""The real-data study in one command: ``babymerge demo`` with ``real_data_study.yaml`` on the shared data.

The shared data is adapted to BabyLM's ``evaluation_data`` layout with symlinks under ``OUT/evaluation_data``
(nothing is copied); training reads BabyLM text (``babylm_text/train_600k``) and Flickr8k
(``flickr8k_1k/captions.txt`` beside ``images/``) in place.

    nice -n 10 python benchmarks/real_data_study.py --shared ../shared/data --out study
"""

from __future__ import annotations

import argparse
from pathlib import Path

from babymerge.demo.run import load_config, run_demo
from babymerge.evaluation.layout import build_layout

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path("study"))
    parser.add_argument("--config", type=Path, default=HERE / "real_data_study.yaml")
    args = parser.parse_args()
    out = args.out.resolve()
    build_layout([args.shared.resolve()], out / "evaluation_data")  # `babymerge data --build`'s function
    config = load_config(
        args.config,
        out=out,
        data_dir=out / "evaluation_data",
        train_text=args.shared.resolve() / "babylm_text" / "train_600k",
        images_captions=args.shared.resolve() / "flickr8k_1k" / "captions.txt",
    )
    outcome = run_demo(config)
    print(outcome["table"])
    print("\n".join(outcome["remarks"]))
    for path in outcome["files"]:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
