"""The real-data study in one command: ``babymerge demo`` with ``real_data_study.yaml`` on the shared data.

The shared data is adapted to BabyLM's ``evaluation_data`` layout with symlinks under ``OUT/evaluation_data``
(nothing is copied); training reads BabyLM text (``babylm_text/train_600k``) and Flickr8k
(``flickr8k_1k/captions.txt`` beside ``images/``) in place.

    nice -n 10 python benchmarks/real_data_study.py --shared ../shared/data --out study
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from babymerge.demo.run import load_config, run_demo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from helpers import babylm_layout  # noqa: E402  (the one map of ../shared/data onto evaluation_data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path("study"))
    parser.add_argument("--config", type=Path, default=HERE / "real_data_study.yaml")
    args = parser.parse_args()
    out = args.out.resolve()
    config = load_config(
        args.config,
        out=out,
        data_dir=babylm_layout(out / "evaluation_data", args.shared.resolve()),
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
