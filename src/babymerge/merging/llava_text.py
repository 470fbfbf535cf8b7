"""Merge the language model inside a LLaVA (stock transformers or babyllava) with a text-only causal LM.

mergekit 0.1.5 cannot do this alone: the two checkpoints name the same language-model tensors differently
(``language_model.model.*`` or ``model.language_model.*`` against ``model.*``) and the multimodal one carries
tensors the other lacks (vision tower, projector), which mergekit drops or refuses. For such a pair the guarded
``run_merge`` builds a mergekit architecture from the checkpoints' tensor names (each language-model weight named
as in the output model, with its name in the other layout as an alias, plus every multimodal-only tensor) and lets
mergekit plan and run the recipe's method. Multimodal-only tensors are planned as ``passthrough`` from the output
model: mergekit's own handling of a weight missing from some inputs depends on the method (some skip it).

The output takes the class, config, tokenizer and other files of the FIRST model under ``models:``: a LLaVA first
gives a complete LLaVA folder, a text-only LM first gives the merged language model alone as a causal LM.
The layouts are data: ``architectures/llava_text.json``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..formats.checkpoint import read_tensors
from .checks import MergeInputError, ModelInputs, check_recipe, covered_names, merge_input, read_model
from .parents import check_parents

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".msgpack", ".h5")


class MultimodalLayout(BaseModel):
    """One multimodal checkpoint layout: its ``architectures[0]`` and its language-model prefixes."""

    architecture: str
    language_model: dict[str, str]  # multimodal prefix -> text-only causal-LM prefix


class LayoutTable(BaseModel):
    multimodal: list[MultimodalLayout]
    text_architecture_suffix: str
    never_copied: list[str]


@cache
def layouts() -> LayoutTable:
    text = resources.files("babymerge.merging").joinpath("architectures", "llava_text.json").read_text()
    return LayoutTable.model_validate_json(text)


@dataclass
class Side:
    """One input model: its reference, tensors and, for multimodal models, the layout that maps its LM names."""

    ref: Any  # mergekit ModelReference
    inputs: ModelInputs
    layout: MultimodalLayout | None
    lm: dict[str, str] = field(default_factory=dict)  # text-only LM name -> this model's name
    extra: list[str] = field(default_factory=list)  # multimodal-only tensors (vision tower, projector, ...)

    @property
    def path(self) -> Path:
        return self.inputs.path

    @property
    def multimodal(self) -> bool:
        return self.layout is not None


@dataclass
class CrossLayoutPlan:
    """A checked pair: the sides (output model first) and the mergekit architecture that merges them."""

    sides: list[Side]
    arch: Any  # mergekit ModelArchitecture
    copied: frozenset[str]  # output names taken whole from the output model

    @property
    def output(self) -> Side:
        return self.sides[0]


def _config(config_file: Path) -> dict:
    try:
        return json.loads(config_file.read_text())
    except (OSError, ValueError):
        return {}


def _architecture(config: dict) -> str | None:
    return (config.get("architectures") or [None])[0]


def _is_text_lm(config: dict) -> bool:
    """A text-only causal LM: a ``*ForCausalLM`` architecture whose config has no ``text_config``."""
    arch = _architecture(config)
    suffix = layouts().text_architecture_suffix
    return bool(arch) and arch.endswith(suffix) and "text_config" not in config and not _is_multimodal(config)


def _is_multimodal(config: dict) -> bool:
    return any(layout.architecture == _architecture(config) for layout in layouts().multimodal)


def _ordered_refs(merge_config: Any) -> list[Any]:
    """Models in recipe order (the first decides the output), then the base model if it is not listed."""
    refs = [entry.model for entry in merge_config.models or []]
    if merge_config.base_model is not None and merge_config.base_model not in refs:
        refs.append(merge_config.base_model)
    if not refs:  # slices / modules recipes
        refs = sorted(merge_config.referenced_models(), key=str)
    return refs


def is_cross_layout_merge(merge_config: Any) -> bool:
    """True when the local models mix a known multimodal layout with a text-only causal LM."""
    configs = [_config(Path(ref.model.path) / "config.json") for ref in _ordered_refs(merge_config)]
    return any(_is_multimodal(c) for c in configs) and any(_is_text_lm(c) for c in configs)


def _side(ref: Any) -> Side:
    inputs = read_model(ref.model.path)
    if _is_text_lm(inputs.config):
        return Side(ref, inputs, None, lm={name: name for name in inputs.tensors})
    best = _layout_for(inputs.path, inputs.tensors)
    side = Side(ref, inputs, best)
    for name in sorted(inputs.tensors):
        text_name = _text_name(name, best)
        if text_name is None:
            side.extra.append(name)
        else:
            side.lm[text_name] = name
    if not side.lm:
        raise MergeInputError(f"{inputs.path}: no language-model tensor under {', '.join(best.language_model)}")
    return side


def _text_name(name: str, layout: MultimodalLayout) -> str | None:
    for prefix, text_prefix in layout.language_model.items():
        if name.startswith(prefix):
            return text_prefix + name[len(prefix) :]
    return None


def check_tensors(sides: list[Side]) -> None:
    """Every language-model tensor has its counterpart, of the same shape, on every side."""
    first = sides[0]
    for side in sides[1:]:
        for a, b in ((first, side), (side, first)):
            lonely = sorted(set(a.lm) - set(b.lm))
            if lonely:
                raise MergeInputError(
                    f"{a.path}: language-model tensor {a.lm[lonely[0]]} has no counterpart in {b.path} "
                    f"(looked for {_own_name(lonely[0], b)})"
                )
        for text_name, name in first.lm.items():
            shape, other = first.inputs.tensors[name].shape, side.inputs.tensors[side.lm[text_name]].shape
            if shape != other:
                raise MergeInputError(
                    f"{side.path}: tensor {side.lm[text_name]} has shape {list(other)}, but {first.path}'s "
                    f"{name} has {list(shape)}"
                )


def _own_name(text_name: str, side: Side) -> str:
    if side.layout is None:
        return text_name
    for prefix, text_prefix in side.layout.language_model.items():
        if text_name.startswith(text_prefix):
            return prefix + text_name[len(text_prefix) :]
    return text_name


def _weight(name: str, aliases: list[str]) -> dict:
    weight: dict[str, Any] = {"name": name}
    if aliases:
        weight["aliases"] = aliases
    if name.endswith(("embed_tokens.weight", "lm_head.weight")):
        weight["vocabulary_axis"] = 0
    return weight


def _module(model_type: str, weights: list[dict]) -> dict:
    return {
        "architecture": {
            "model_type": model_type,
            "architectures": [],
            "pre_weights": weights,
            "layer_templates": {"weights": []},
            "post_weights": [],
            "override_num_layers": 0,
        }
    }


def build_architecture(sides: list[Side], options: Any) -> Any:
    """mergekit's modular architecture for this pair, in mergekit's own JSON schema."""
    from mergekit.architecture.json_definitions import _load_architecture_json

    out = sides[0]
    config = out.inputs.config
    lm_type = out.ref.config(trust_remote_code=options.trust_remote_code).get_text_config().model_type
    lm_weights = [
        _weight(name, sorted({s.lm[text_name] for s in sides} - {name})) for text_name, name in out.lm.items()
    ]
    modules = {"text_decoder": _module(lm_type, lm_weights)}
    if out.multimodal:
        modules["multimodal"] = _module("", [_weight(name, []) for name in out.extra])
    never = set(layouts().never_copied)
    files = [p.name for p in out.path.iterdir() if p.is_file()]
    tagalong = sorted(n for n in files if n not in never and not n.endswith(WEIGHT_SUFFIXES))
    definition = {
        "kind": "modular",
        "architectures": [out.inputs.architecture],
        "model_type": config.get("model_type", ""),
        "tagalong_files": tagalong,
        "vocab_size_config_key": "text_config.vocab_size" if out.multimodal else "vocab_size",
        "modules": modules,
    }
    return _load_architecture_json(json.dumps(definition))


def plan_cross_layout(merge_config: Any, options: Any) -> CrossLayoutPlan:
    """All checks that need no merging, then the architecture. The first model under ``models:`` is the output."""
    if not merge_config.models or merge_config.slices or merge_config.modules:
        raise MergeInputError(
            "models: a LLaVA + text-only merge takes a `models:` list (no slices or modules); "
            "the first model decides the output"
        )
    for ref in _ordered_refs(merge_config):
        if not Path(ref.model.path).is_dir():
            raise MergeInputError(f"{ref.model.path}: LLaVA + text-only merges need local model folders")
    sides = [_side(ref) for ref in _ordered_refs(merge_config)]
    check_parents([side.inputs for side in sides])
    check_tensors(sides)
    arch = build_architecture(sides, options)
    copied = frozenset(sides[0].extra) if sides[0].multimodal else frozenset()
    return CrossLayoutPlan(sides, arch, copied)


def check_covered(plan: CrossLayoutPlan, options: Any) -> None:
    """Before merging: the architecture writes every tensor of the output model (mergekit drops the others)."""
    config = plan.output.ref.config(trust_remote_code=options.trust_remote_code)
    covered = covered_names(plan.arch, config)
    for name in sorted(set(plan.output.inputs.tensors) - set(covered)):
        kind = "language-model" if name in plan.output.lm.values() else "vision/projector"
        raise MergeInputError(f"{plan.output.path}: {kind} tensor {name} would be lost (not in the merge plan)")


def check_output(plan: CrossLayoutPlan, out: Path) -> None:
    """The guard: every tensor of the output model, and every other input's language-model tensor, was merged."""
    output = plan.output
    written = set(merge_input(read_tensors, out))
    for name in sorted(set(output.inputs.tensors) - written):
        kind = "language-model" if name in output.lm.values() else "vision/projector"
        raise MergeInputError(f"{output.path}: {kind} tensor {name} did not reach the merged output {out}")
    for side in plan.sides[1:]:
        for text_name, name in sorted(side.lm.items()):
            if output.lm.get(text_name) not in written:
                raise MergeInputError(f"{side.path}: tensor {name} has no merged counterpart in {out}")
    wanted = output.inputs.architecture
    got = _architecture(_config(out / "config.json"))
    if got != wanted:
        raise MergeInputError(f"{out / 'config.json'}: architectures is {got!r}, expected {wanted!r}")


@contextmanager
def planned_as(plan: CrossLayoutPlan) -> Iterator[None]:
    """Point mergekit's merge at the pair's architecture, the output model's config and files, and copy
    multimodal-only tensors from the output model with ``passthrough``."""
    import mergekit.merge as merge
    from mergekit import merge_methods
    from mergekit.plan import MergePlanner

    saved = {
        "get_architecture_info": merge.get_architecture_info,
        "_model_out_config": merge._model_out_config,
        "_get_donor_model": merge._get_donor_model,
    }
    plan_tensor = MergePlanner.plan_tensor
    passthrough = merge_methods.get("passthrough")
    output = plan.output

    def out_config(config: Any, arch_info: Any, trust_remote_code: bool = False) -> Any:
        res = copy.deepcopy(output.ref.config(trust_remote_code=trust_remote_code))
        if config.out_dtype or config.dtype:
            res.dtype = config.out_dtype or config.dtype
        return res

    def planned_tensor(self, weight, weights_in, models, cfg_reader):
        if weight.name not in plan.copied:
            return plan_tensor(self, weight, weights_in, models, cfg_reader)
        method, self._method = self._method, passthrough
        try:
            return plan_tensor(self, weight, [weight], [output.ref], cfg_reader)
        finally:
            self._method = method

    merge.get_architecture_info = lambda config, options: plan.arch
    merge._model_out_config = out_config
    merge._get_donor_model = lambda config, options: (output.ref, str(output.path))
    MergePlanner.plan_tensor = planned_tensor
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(merge, name, value)
        MergePlanner.plan_tensor = plan_tensor


def run_cross_layout_merge(
    original: Any, merge_config: Any, out_path: str, options: Any, config_source: str | None = None
) -> None:
    """Check the pair, merge with mergekit into a hidden folder, run the guard, rename into place."""
    from ..io import atomic_dir, refuse_existing
    from .guarded import check_complete_folder, finite_inputs, local_paths_stay_local

    out = merge_input(refuse_existing, out_path)
    plan = plan_cross_layout(merge_config, options)
    check_recipe(merge_config, plan.arch.modules)
    check_covered(plan, options)
    with ExitStack() as stack:
        target = stack.enter_context(atomic_dir(out, create=False))
        for manager in (planned_as(plan), local_paths_stay_local(), finite_inputs()):
            stack.enter_context(manager)
        original(merge_config, str(target), options, config_source=config_source)
        check_output(plan, target)
        check_complete_folder(target, plan.output.path, options, plan.arch.tagalong_files or [])


# -- in-memory merges (the sweep) -------------------------------------------------------------------------------


def is_text_lm_folder(folder: str | Path) -> bool:
    """True for a text-only causal LM checkpoint folder (``*ForCausalLM`` without ``text_config``)."""
    return _is_text_lm(_config(Path(folder) / "config.json"))


def _layout_for(folder: Path, names: Any) -> MultimodalLayout:
    arch = _architecture(_config(folder / "config.json"))
    candidates = [layout for layout in layouts().multimodal if layout.architecture == arch]
    if not candidates:
        raise MergeInputError(
            f"{folder}: architecture {arch} is neither a known multimodal layout "
            f"({', '.join(sorted({m.architecture for m in layouts().multimodal}))}) nor a text-only *ForCausalLM"
        )
    return max(candidates, key=lambda layout: sum(_text_name(n, layout) is not None for n in names))


def as_multimodal_state(
    text_state: dict[str, Any], text_folder: str | Path, multimodal_state: dict[str, Any], multimodal_folder: str | Path
) -> dict[str, Any]:
    """A text-only LM's tensors under the multimodal model's names, its multimodal-only tensors from that model."""
    layout = _layout_for(Path(multimodal_folder), multimodal_state)
    out, used = {}, set()
    for name, tensor in multimodal_state.items():
        text_name = _text_name(name, layout)
        if text_name is None:
            out[name] = tensor
            continue
        if text_name not in text_state:
            raise MergeInputError(f"{text_folder}: language-model tensor {text_name} missing (for {name})")
        if text_state[text_name].shape != tensor.shape:
            raise MergeInputError(
                f"{text_folder}: tensor {text_name} has shape {list(text_state[text_name].shape)}, "
                f"but {multimodal_folder}'s {name} has {list(tensor.shape)}"
            )
        out[name] = text_state[text_name]
        used.add(text_name)
    for name in sorted(set(text_state) - used):
        raise MergeInputError(f"{text_folder}: tensor {name} has no counterpart in {multimodal_folder}")
    return out


def multimodal_only_names(multimodal_folder: str | Path, names: Any) -> list[str]:
    """The multimodal model's tensors outside its language model (vision tower, projector, ...)."""
    layout = _layout_for(Path(multimodal_folder), names)
    return [name for name in names if _text_name(name, layout) is None]
