"""The guarded ``run_merge`` that replaces mergekit's for babymerge's architectures.

For merges whose models are babyllava (or the reference Llava layout) it checks the recipe (every key, every
parameter value) and the inputs first, merges into a locked hidden folder beside the destination (failing on
NaN/Inf as each tensor is loaded and as each merged tensor is written, keeping the black image's features
bitwise), runs the guard (every input tensor reached the output) and the completeness check, then renames the
folder into place: nothing half-written on failure, and a full disk is one line. The folder is the same
bytes on every run (mergekit's card lists the models in a stable order). Merges of other
architectures go straight to mergekit's own ``run_merge``.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import BabymergeError
from ..io import atomic_dir, refuse_existing
from ..logs import torch_dtype_setter
from .checks import (
    MergeInputError,
    ModelInputs,
    all_finite,
    check_coverage,
    check_recipe,
    check_recipe_keys,
    check_same_architecture,
    check_tensors_reach_output,
    covered_names,
    merge_input,
    read_model,
)
from .parents import check_parents, check_same_tensors
from .plugin import architecture_names

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# Buffers that are not learned (identical in every parent) and come through every method bitwise.
KEPT_BUFFERS = ("model.black_image_features",)


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
    check_parents(models, tensors=False)
    arch_name = models[0].architecture
    config = merge_config.referenced_models()[0].config(trust_remote_code=options.trust_remote_code)
    arch = arch_info_for_config(config)
    if arch is None:
        raise MergeInputError(f"{models[0].path}: no mergekit architecture definition for {arch_name}")
    check_recipe(merge_config, arch.modules)
    covered = covered_names(arch, config)
    for model in models:
        check_coverage(model, covered, arch_name)
    check_same_tensors(models)
    return models, covered


@contextmanager
def finite_inputs() -> Iterator[None]:
    """Fail on NaN/Inf as mergekit loads each input tensor (one reduction on data it reads anyway)."""
    from mergekit.io.tasks import LoadTensor

    original = LoadTensor.execute

    def execute(self):
        tensor = original(self)
        if tensor is not None and not all_finite(tensor):
            raise MergeInputError(f"{self.model.model.path}: tensor {self.tensor} holds NaN or Inf values")
        return tensor

    LoadTensor.execute = execute
    try:
        yield
    finally:
        LoadTensor.execute = original


def kept_buffers(models: list[ModelInputs]) -> dict[str, Any]:
    """The donor's :data:`KEPT_BUFFERS`, after checking that every model holds the same values bitwise."""
    from safetensors import safe_open

    kept: dict[str, Any] = {}
    for name in KEPT_BUFFERS:
        for model in models:
            if name not in model.tensors:
                continue
            with safe_open(str(model.tensors[name].file), framework="pt") as handle:
                tensor = handle.get_tensor(name)
            if name not in kept:
                kept[name], donor = tensor, model.path
            elif not (tensor.dtype == kept[name].dtype and bool((tensor == kept[name]).all())):
                raise MergeInputError(
                    f"{model.path}: tensor {name} differs from {donor}'s; it is fixed by the vision backbone and "
                    "must be identical in every model (extract both models' features with the same backbone)"
                )
    return kept


@contextmanager
def checked_outputs(out: Path, kept: dict[str, Any]) -> Iterator[None]:
    """As mergekit writes each merged tensor: put back the kept buffers, fail on NaN/Inf naming the tensor."""
    from mergekit.io.tensor_writer import TensorWriter

    original = TensorWriter.save_tensor

    def save_tensor(self, name, tensor, clone=False):
        if name in kept:
            tensor = kept[name].to(tensor.dtype)
        if not all_finite(tensor):
            raise MergeInputError(
                f"{out}: merged tensor {name} holds NaN or Inf values (check the recipe's weights and dtype); "
                "nothing was written"
            )
        return original(self, name, tensor, clone=clone)

    TensorWriter.save_tensor = save_tensor
    try:
        yield
    finally:
        TensorWriter.save_tensor = original


def disk_full(error: BaseException) -> bool:
    """ENOSPC/EDQUOT as an OSError or inside a safetensors error message."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return "No space left on device" in str(error) or "StorageFull" in str(error)


@contextmanager
def stable_model_order() -> Iterator[None]:
    """mergekit lists a recipe's models from a set, so its model card's order changed from run to run."""
    from mergekit.config import MergeConfiguration

    original = MergeConfiguration.referenced_models
    MergeConfiguration.referenced_models = lambda self: sorted(original(self), key=str)
    try:
        yield
    finally:
        MergeConfiguration.referenced_models = original


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
        return merge_input(run_cross_layout_merge, original, merge_config, out_path, options, config_source)
    if not is_babymerge_merge(merge_config):
        return original(merge_config, out_path, options, config_source=config_source)
    out = merge_input(refuse_existing, out_path)
    if config_source is not None:  # mergekit-yaml passes the recipe text: its unknown keys were dropped
        import yaml

        check_recipe_keys(yaml.safe_load(config_source))
    models, covered = preflight(merge_config, options)
    kept = kept_buffers(models)
    from mergekit.architecture import arch_info_for_config

    tagalong = arch_info_for_config(merge_config.referenced_models()[0].config()).tagalong_files or []
    try:
        with atomic_dir(out, create=False) as target:
            with local_paths_stay_local(), stable_model_order(), finite_inputs(), checked_outputs(out, kept):
                with torch_dtype_setter():
                    original(merge_config, str(target), options, config_source=config_source)
            check_tensors_reach_output([m.path for m in models], target, covered)
            check_complete_folder(target, models[0].path, options, tagalong)
    except MergeInputError:
        raise
    except BabymergeError as error:  # from io.atomic_dir: an output that appeared meanwhile
        raise MergeInputError(str(error)) from None
    except Exception as error:
        if not disk_full(error):
            raise
        raise MergeInputError(f"{out}: no space left on device while writing the merge; nothing was kept") from error
    return None


guarded_run_merge.__wrapped__ = None
