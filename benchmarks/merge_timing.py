"""Shared by the merge benchmarks (merge_bench.py, llava_text_merge_bench.py): the linear recipe they time,
a measured child process, and the unmodified ``mergekit-yaml`` command timed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


def linear_recipe(path: Path, a: Path, b: Path) -> Path:
    """A float32 linear merge, weight 0.5 each, no normalisation."""
    path.write_text(
        "merge_method: linear\ndtype: float32\nparameters: {normalize: false}\nmodels:\n"
        f"  - model: {a}\n    parameters: {{weight: 0.5}}\n  - model: {b}\n    parameters: {{weight: 0.5}}\n"
    )
    return path


def child(code: str, kind: str, *args: str | Path) -> dict:
    """Run ``code`` in a fresh interpreter with ``kind`` and ``args``; its last stdout line is a JSON result."""
    result = subprocess.run([sys.executable, "-c", code, kind, *map(str, args)], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{kind} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def mergekit_yaml_seconds(recipe: Path, out: Path) -> float:
    """Wall seconds of ``mergekit-yaml RECIPE OUT --quiet``."""
    start = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).with_name("mergekit-yaml")), str(recipe), str(out), "--quiet"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start
