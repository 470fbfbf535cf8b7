"""Checks run before and after a babyllava merge; each failure is one line naming the model and tensor or field.

Before: the recipe (known method, known parameters, a base_model where the method needs one, every module of
the architecture present), then each model (same architecture, readable and complete safetensors, every tensor
covered by the architecture definition, matching shapes, finite values). After: every input tensor reached
the output (the guard) and the folder is complete (config, tokenizer, modeling code, model card).
"""

from __future__ import annotations

import difflib
import json
import math
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import click

from ..errors import BabymergeError
from ..formats.checkpoint import TensorInfo, check_same_shapes, read_tensors, shapes


class MergeInputError(BabymergeError, click.ClickException):
    """Bad merge input. A BabymergeError for Python callers; ``mergekit-yaml`` prints it as one ``Error:`` line."""

    def __init__(self, message: str):
        BabymergeError.__init__(self, message)
        click.ClickException.__init__(self, message)

    def __str__(self) -> str:
        return self.message


@dataclass
class ModelInputs:
    """One local model folder: its config and the name, shape and file of every tensor."""

    path: Path
    config: dict[str, Any]
    tensors: dict[str, TensorInfo] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return (self.config.get("architectures") or ["?"])[0]


def read_model(path: str | Path) -> ModelInputs:
    """Config and tensor table of a local checkpoint folder (sharded or not)."""
    path = Path(path)
    config_file = path / "config.json"
    if not path.is_dir():
        raise MergeInputError(f"{path}: model folder not found")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as error:
        raise MergeInputError(f"{config_file}: cannot read config ({error})") from error
    return ModelInputs(path, config, merge_input(read_tensors, path))


def merge_input(read: Callable[..., Any], *args: Any) -> Any:
    """``read(*args)`` with a bad-input error raised as :class:`MergeInputError` (one line in mergekit-yaml)."""
    try:
        return read(*args)
    except MergeInputError:
        raise
    except BabymergeError as error:
        raise MergeInputError(str(error)) from None


def covered_names(arch: Any, config: Any) -> dict[str, str]:
    """``{name or alias or tied name: output name}`` for every weight a mergekit architecture writes."""
    out: dict[str, str] = {}
    for weight in arch.all_weights(config):
        out[weight.name] = weight.name
        for other in (weight.aliases or ()) + (weight.tied_names or ()):
            out.setdefault(other, weight.name)
    return out


def check_same_architecture(models: list[ModelInputs]) -> None:
    first = models[0]
    for model in models[1:]:
        if (model.architecture, model.config.get("model_type")) != (first.architecture, first.config.get("model_type")):
            raise MergeInputError(
                f"{model.path}: architecture {model.architecture} ({model.config.get('model_type')}) does not "
                f"match {first.path}'s {first.architecture} ({first.config.get('model_type')})"
            )


def check_coverage(model: ModelInputs, covered: dict[str, str], arch_name: str) -> None:
    """Every tensor of ``model`` is written by the architecture definition (mergekit drops the others)."""
    missing = sorted(set(model.tensors) - set(covered))
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise MergeInputError(
            f"{model.path}: tensor {missing[0]}{more} not covered by the mergekit architecture {arch_name}; "
            "it would be dropped from the output"
        )


def check_shapes(models: list[ModelInputs]) -> None:
    """Every model holds the first one's tensor names and shapes (``formats.checkpoint.check_same_shapes``)."""
    first = models[0]
    for model in models[1:]:
        merge_input(check_same_shapes, shapes(first.tensors), shapes(model.tensors), model.path, first.path)


def all_finite(tensor: Any) -> bool:
    """No NaN/Inf (one reduction; the elements are looked at only when the sum is not finite: it can overflow)."""
    import torch

    if not tensor.is_floating_point() or bool(torch.isfinite(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


def check_finite(model: ModelInputs) -> None:
    """No NaN or Inf in any floating-point tensor (a standalone scan; merges check as mergekit loads instead)."""
    from safetensors import safe_open

    by_file: dict[Path, list[str]] = {}
    for name, info in model.tensors.items():
        if info.dtype.startswith(("F", "BF")):
            by_file.setdefault(info.file, []).append(name)
    for file, names in by_file.items():
        with safe_open(str(file), framework="pt") as handle:
            for name in names:
                if not all_finite(handle.get_tensor(name)):
                    raise MergeInputError(f"{model.path}: tensor {name} holds NaN or Inf values")


def check_tensors_reach_output(
    inputs: Iterable[str | Path], output: str | Path, covered: dict[str, str] | None = None
) -> None:
    """The guard: every tensor of every input folder is present in the merged folder (by output name)."""
    written = set(merge_input(read_tensors, output))
    for path in inputs:
        for name in sorted(merge_input(read_tensors, path)):
            target = (covered or {}).get(name, name)
            if target not in written and name not in written:
                raise MergeInputError(f"{path}: tensor {name} did not reach the merged output {output}")


def check_recipe(merge_config: Any, module_names: Iterable[str]) -> None:
    """Method known, parameters known and complete, base_model present when needed, no module left out, and the
    method's own check of its inputs (``check_recipe`` on the method object, e.g. Fisher's statistics files)."""
    from mergekit.merge_methods import registry
    from mergekit.merge_methods.base import BasePolicy, ParameterScope

    known = {m.spec.name: m for m in registry.registered_methods()}
    method = known.get(merge_config.merge_method)
    if method is None:
        raise MergeInputError(
            f"merge_method: unknown method {merge_config.merge_method!r}; choose one of {', '.join(sorted(known))}"
        )
    spec = method.spec
    by_name = {p.name: p for p in spec.parameters}
    data = merge_config.model_dump(mode="json", exclude_none=True)
    for where, params in _parameter_blocks(data):
        for name, setting in params.items():
            if name not in by_name:
                raise MergeInputError(f"{where}.{name}: unknown parameter for {spec.name}; {_suggest(name, by_name)}")
            _check_setting(f"{where}.{name}", setting, by_name[name])
    check_zero_sum_weights(merge_config)
    if spec.contract.base == BasePolicy.REQUIRED and not _has_base(merge_config):
        raise MergeInputError(
            f"base_model: merge method {spec.name} needs a base_model (the shared initial checkpoint its deltas "
            "are taken from)"
        )
    if merge_config.models:
        shared = set((merge_config.parameters or {}).keys())
        base = str(merge_config.base_model) if merge_config.base_model else None
        for i, entry in enumerate(merge_config.models):
            own = set((entry.parameters or {}).keys()) | shared
            is_base = str(entry.model) == base
            for p in spec.parameters:
                per_model = p.scope == ParameterScope.INPUT or (p.scope == ParameterScope.NON_BASE and not is_base)
                needed = p.required and per_model
                if needed and p.name not in own:
                    raise MergeInputError(f"models[{i}].parameters.{p.name}: required by {spec.name} for {entry.model}")
    for p in spec.parameters:
        if p.required and p.scope == ParameterScope.SHARED and p.name not in (merge_config.parameters or {}):
            if not any(p.name in params for _, params in _parameter_blocks(data)):
                raise MergeInputError(f"parameters.{p.name}: required by {spec.name}")
    if merge_config.modules is not None:
        left_out = sorted(set(module_names) - set(merge_config.modules))
        if left_out:
            raise MergeInputError(
                f"modules: recipe leaves out module {left_out[0]}; its tensors would be dropped "
                f"(list every module: {', '.join(sorted(module_names))})"
            )
    elif merge_config.slices is not None and len(list(module_names)) > 1:
        raise MergeInputError("slices: babyllava has several modules; use the modules: syntax for slices")
    own_check = getattr(method, "check_recipe", None)  # a babymerge method's own inputs (Fisher's statistics)
    if own_check is not None:
        own_check(merge_config)


def _suggest(key: str, allowed: Iterable[str]) -> str:
    """``did you mean 'x'?`` (difflib) or the list of allowed names."""
    allowed = sorted(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    return f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(allowed)}"


def _check_setting(where: str, setting: Any, spec: Any) -> None:
    """Every value of a parameter setting (scalar, gradient list or conditional) has the parameter's type."""
    from pydantic import ValidationError

    if isinstance(setting, list):
        for i, item in enumerate(setting):
            _check_setting(f"{where}[{i}]", item, spec)
    elif isinstance(setting, dict):
        _check_setting(f"{where}.value", setting.get("value"), spec)
    else:
        try:
            spec.validate(setting)
        except ValidationError as error:
            reason = error.errors()[0]["msg"]
            raise MergeInputError(f"{where}: invalid value {setting!r} ({reason})") from None


def check_zero_sum_weights(merge_config: Any) -> None:
    """linear with ``normalize`` on divides by the sum of the weights: a zero sum makes every tensor NaN/Inf."""
    if merge_config.merge_method != "linear":
        return
    data = merge_config.model_dump(mode="json", exclude_none=True)
    groups = [("models", data.get("models"), [data])]
    for name, module in (data.get("modules") or {}).items():
        groups.append((f"modules.{name}.models", module.get("models"), [module, data]))
        for i, slice_ in enumerate(module.get("slices") or []):
            groups.append((f"modules.{name}.slices[{i}].sources", slice_["sources"], [slice_, module, data]))
    for i, slice_ in enumerate(data.get("slices") or []):
        groups.append((f"slices[{i}].sources", slice_["sources"], [slice_, data]))
    for where, entries, outer in groups:
        if not entries:
            continue
        settings = [[e.get("parameters") or {}] + [o.get("parameters") or {} for o in outer] for e in entries]
        weights = [next((b["weight"] for b in blocks if "weight" in b), None) for blocks in settings]
        normalize = [next((b["normalize"] for b in blocks if "normalize" in b), True) for blocks in settings]
        numbers = all(isinstance(w, int | float) and not isinstance(w, bool) for w in weights)
        if numbers and any(normalize) and math.isclose(sum(weights), 0.0, abs_tol=1e-12):
            raise MergeInputError(
                f"{where}: weights {weights} sum to 0 and linear's normalize is on (it divides by the sum); "
                "use weights with a non-zero sum or set parameters.normalize: false"
            )


def validate_recipe(data: Any, source: str | Path) -> Any:
    """``MergeConfiguration.model_validate(data)`` with its failures as one line naming the recipe and key."""
    from mergekit.config import MergeConfiguration
    from pydantic import ValidationError

    try:
        return MergeConfiguration.model_validate(data)
    except ValidationError as error:
        try:
            check_recipe_keys(data)  # a misspelt key often explains the failure
        except MergeInputError as typo:
            raise MergeInputError(f"{source}: {typo}") from None
        raise MergeInputError(f"{source}: {_validation_line(error, data)}") from None
    except RuntimeError as error:  # mergekit's validators raise RuntimeError, which pydantic passes through
        raise MergeInputError(f"{source}: {' '.join(str(error).split())}") from None


def _validation_line(error: Any, data: Any) -> str:
    """``key.path: reason (got value)`` for the first error; union members' type names are not key paths."""
    errors = error.errors()
    first = errors[0]
    path: list = []
    node = data
    for part in first["loc"]:
        inside = isinstance(node, dict) and part in node
        inside = inside or (isinstance(node, list) and isinstance(part, int) and part < len(node))
        if not inside:
            break
        path.append(part)
        node = node[part]
    if first["type"] == "missing" and len(errors) == 1:
        return f"{_key_path([*path, first['loc'][len(path)]])}: required key missing"
    reason = first["msg"] if len(errors) == 1 else "not a valid value here"
    shown = repr(node) if len(repr(node)) <= 80 else repr(node)[:77] + "..."
    return f"{_key_path(path) or 'recipe'}: {reason} (got {shown})"


def _key_path(parts: Iterable) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def check_recipe_keys(data: Any, where: str = "") -> None:
    """Every key of a raw recipe is one of mergekit's schema, at every level; a typo gets a "did you mean"."""
    from mergekit.config import MergeConfiguration

    _check_keys(data, MergeConfiguration, where)


def _check_keys(data: Any, annotation: Any, where: str) -> None:
    from pydantic import BaseModel

    origin = get_origin(annotation)
    if origin is Annotated:
        _check_keys(data, get_args(annotation)[0], where)
    elif origin in (Union, types.UnionType):
        shaped = [a for a in get_args(annotation) if _fits(data, a)]
        if shaped:
            _check_keys(data, shaped[0], where)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if not isinstance(data, dict):
            return
        fields = {(f.alias or n): f for n, f in annotation.model_fields.items()}
        for key, value in data.items():
            here = f"{where}.{key}" if where else str(key)
            if key not in fields:
                raise MergeInputError(f"{here}: unknown recipe key; {_suggest(str(key), fields)}")
            _check_keys(value, fields[key].annotation, here)  # parameter names: check_recipe (method-specific)
    elif origin in (list, tuple) and isinstance(data, list):
        for i, item in enumerate(data):
            _check_keys(item, get_args(annotation)[0], f"{where}[{i}]")
    elif origin is dict and isinstance(data, dict):
        for key, value in data.items():
            _check_keys(value, get_args(annotation)[1], f"{where}.{key}" if where else str(key))


def _fits(data: Any, annotation: Any) -> bool:
    """Whether ``data`` has the shape (mapping, list, scalar) of one member of a Union."""
    from pydantic import BaseModel

    origin = get_origin(annotation) or annotation
    if isinstance(data, dict):
        return origin is dict or (isinstance(origin, type) and issubclass(origin, BaseModel))
    if isinstance(data, list):
        return origin in (list, tuple)
    return False


def _has_base(merge_config: Any) -> bool:
    if merge_config.base_model is not None:
        return True
    slices = list(merge_config.slices or [])
    slices += [s for module in (merge_config.modules or {}).values() for s in (module.slices or [])]
    return bool(slices) and all(s.base_model is not None for s in slices)


def _parameter_blocks(node: Any, where: str = "") -> Iterable[tuple[str, dict]]:
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else key
            if key == "parameters" and isinstance(value, dict):
                yield here, value
            else:
                yield from _parameter_blocks(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _parameter_blocks(value, f"{where}[{i}]")
