"""The guarded ``run_merge`` that replaces mergekit's for babymerge's architectures.

For merges whose models are babyllava (or the reference Llava layout) it checks the recipe and the inputs
first, merges into a hidden folder beside the destination (failing on NaN/Inf as each tensor is loaded),
runs the guard (every input tensor reached the output) and the completeness check, then renames the folder
into place: nothing half-written on failure. Merges of other architectures go straight to mergekit's own
``run_merge``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .checks import (
    MergeInputError,
    ModelInputs,
    check_coverage,
    check_recipe,
    check_same_architecture,
    check_shapes,
    check_tensors_reach_output,
    covered_names,
    read_model,
)
from .plugin import architecture_names

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def local_model_dirs(merge_config: Any) -> list[Path]:
    """Local folders of the referenced models, base model first, in a stable order."""
    refs = merge_config.referenced_models()
    base = merge_config.base_model
    ordered = ([base] if base is not None else []) + sorted((r for r in refs if r != base), key=str)
    return [Path(r.model.path) for r in ordered]


def is_babymerge_merge(merge_config: Any) -> bool:
    """True when any referenced model is a local folder whose architecture babymerge defines."""
    for path in local_model_dirs(merge_config):
        try:
            archs = json.loads((path / "config.json").read_text()).get("architectures") or []
        except (OSError, ValueError):
            continue
        if archs and archs[0] in architecture_names():
            return True
    return False


def preflight(merge_config: Any, options: Any) -> tuple[list[ModelInputs], dict[str, str]]:
    """All checks that need no merging. Returns the models and the name -> output-name map."""
    from mergekit.architecture import arch_info_for_config

    models = [read_model(path) for path in local_model_dirs(merge_config)]
    check_same_architecture(models)
    arch_name = models[0].architecture
    config = merge_config.referenced_models()[0].config(trust_remote_code=options.trust_remote_code)
    arch = arch_info_for_config(config)
    if arch is None:
        raise MergeInputError(f"{models[0].path}: no mergekit architecture definition for {arch_name}")
    check_recipe(merge_config, arch.modules)
    covered = covered_names(arch, config)
    for model in models:
        check_coverage(model, covered, arch_name)
    check_shapes(models)
    return models, covered


@contextmanager
def finite_inputs() -> Iterator[None]:
    """Fail on NaN/Inf as mergekit loads each input tensor (one reduction on data it reads anyway)."""
    import torch
    from mergekit.io.tasks import LoadTensor

    original = LoadTensor.execute

    def execute(self):
        tensor = original(self)
        if tensor is not None and tensor.is_floating_point() and not bool(torch.isfinite(tensor.sum())):
            if not bool(torch.isfinite(tensor).all()):  # the sum can overflow; the elements decide
                raise MergeInputError(f"{self.model.model.path}: tensor {self.tensor} holds NaN or Inf values")
        return tensor

    LoadTensor.execute = execute
    try:
        yield
    finally:
        LoadTensor.execute = original


@contextmanager
def local_paths_stay_local() -> Iterator[None]:
    """mergekit's card step asks the Hub whether a local folder is a repo id; offline that crashes."""
    import mergekit.card

    original = mergekit.card.is_hf
    mergekit.card.is_hf = lambda path: False if os.path.isdir(path) else original(path)
    try:
        yield
    finally:
        mergekit.card.is_hf = original


def check_complete_folder(out: Path, donor: Path, options: Any, tagalong: list[str]) -> None:
    """The merged folder holds weights, config, tokenizer, modeling code and model card like its donor."""
    wanted = ["config.json"]
    if options.write_model_card:
        wanted += ["README.md", "mergekit_config.yml"]
    if options.copy_tokenizer:
        wanted += [f for f in TOKENIZER_FILES if (donor / f).exists()]
    wanted += [f for f in tagalong if (donor / f).exists()]
    for name in wanted:
        if not (out / name).exists():
            raise MergeInputError(f"{out}: merged folder lacks {name} (present in {donor})")


def guarded_run_merge(merge_config: Any, out_path: str, options: Any, config_source: str | None = None) -> None:
    """mergekit's ``run_merge`` with babymerge's checks, guard and atomic output (same signature)."""
    from importlib import import_module

    original = guarded_run_merge.__wrapped__ or import_module("mergekit.merge").run_merge
    from .llava_text import is_cross_layout_merge, run_cross_layout_merge

    if is_cross_layout_merge(merge_config):  # a LLaVA's language model with a text-only LM (llava_text.py)
        return run_cross_layout_merge(original, merge_config, out_path, options, config_source)
    if not is_babymerge_merge(merge_config):
        return original(merge_config, out_path, options, config_source=config_source)
    out = Path(out_path)
    if out.exists():
        raise MergeInputError(f"{out}: output folder exists; choose another path or remove it")
    models, covered = preflight(merge_config, options)
    from mergekit.architecture import arch_info_for_config

    tagalong = arch_info_for_config(merge_config.referenced_models()[0].config()).tagalong_files or []
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        target = staging / out.name
        with local_paths_stay_local(), finite_inputs():
            original(merge_config, str(target), options, config_source=config_source)
        check_tensors_reach_output([m.path for m in models], target, covered)
        check_complete_folder(target, models[0].path, options, tagalong)
        if out.exists():
            raise MergeInputError(f"{out}: output folder appeared during the merge; result left unpublished")
        os.replace(target, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return None


guarded_run_merge.__wrapped__ = None
