"""Helpers shared by the merging tests: tiny parents, recipe rendering, mergekit-yaml in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from helpers import offline_env
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "merge_recipes"
MERGEKIT_YAML = Path(sys.executable).with_name("mergekit-yaml")


def render(recipe: str, tmp: Path, paths: dict[str, Path]) -> Path:
    from babymerge.merging import write_recipe

    return write_recipe(RECIPES / recipe, tmp / recipe, paths)


def mergekit_yaml(recipe: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = offline_env()
    return subprocess.run(
        [str(MERGEKIT_YAML), str(recipe), str(out), "--quiet", *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def mergekit_yaml_in_process(recipe: Path, out: Path, *extra: str) -> None:
    """The ``mergekit-yaml`` console script's own entry function, called in this process (saves the imports)."""
    from mergekit.scripts.run_yaml import main

    main([str(recipe), str(out), "--quiet", *extra], standalone_mode=False)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))
