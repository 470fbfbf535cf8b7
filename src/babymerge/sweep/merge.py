"""In-memory merges of a text-only and a multimodal checkpoint with mergekit's own method implementations.

One sweep point is ``(method, alpha)``. ``alpha`` is the text-only model's share, as in the paper
(``theta = alpha * theta_text + (1 - alpha) * theta_multimodal``):

- methods with a per-model ``weight`` (linear, task_arithmetic, ties, dare_*, della, breadcrumbs, nuslerp,
  multislerp, and babymerge's fisher and regmean, which read a statistics file beside each checkpoint) get
  ``weight: alpha`` on the text-only model and ``1 - alpha`` on the multimodal one; the task-arithmetic family
  takes its deltas from the shared initial checkpoint (``base``);
- methods with a shared ``t`` (slerp, nearswap) use the multimodal model as base and ``t: alpha``.

:class:`MergeSpec` writes the same merge as a mergekit YAML configuration (for ``mergekit-yaml`` and
``--materialize``) and runs it in memory through ``mergekit.merge_methods.api.merge_state_dicts``: the
tensors are those ``mergekit-yaml`` writes for the same configuration (checked by a test). Randomised methods
(DARE, DELLA) draw from torch's generator seeded with ``seed`` just before the merge, so a point merged twice
gives the same tensors; ``mergekit-yaml`` draws in another order, so ``--materialize`` writes the in-memory
merge for them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from mergekit import merge_methods
from mergekit.merge_methods.api import merge_state_dicts
from mergekit.merge_methods.base import BasePolicy
from pydantic import BaseModel, ConfigDict, Field

from ..errors import BabymergeError
from ..formats.checkpoint import check_same_shapes, read_state, shapes
from ..merging.checks import ModelInputs, check_finite, check_same_architecture, read_model
from ..merging.parents import check_parents
from ..merging.statistics import FISHER, GRAM, Statistics

TEXT, MULTIMODAL, BASE = "text", "multimodal", "base"
DTYPE = "float32"
RANDOMISED = {"dare_ties", "dare_linear", "della", "della_linear"}  # methods that draw random masks
# methods that read a statistics file beside each checkpoint (its parameter, suffix and the command writing it)
STATISTICS: dict[str, Statistics] = {"fisher": FISHER, "regmean": GRAM}


def method_or_error(name: str):
    """The registered mergekit method called ``name``, or a one-line error listing the known ones."""
    known = sorted(m.spec.name for m in merge_methods.registry.registered_methods())
    if name not in known:
        raise BabymergeError(f"method {name!r} is not a mergekit merge method; choose from {', '.join(known)}")
    return merge_methods.get(name)


class MergeSpec(BaseModel):
    """One merge: a mergekit method, the text-only share ``alpha`` and extra method parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str
    alpha: float = Field(ge=0.0, le=1.0)
    parameters: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0

    @property
    def randomised(self) -> bool:
        return self.method in RANDOMISED

    @property
    def _method(self):
        return method_or_error(self.method)

    @property
    def _param_names(self) -> set[str]:
        return {p.name for p in self._method.spec.parameters}

    @property
    def uses_t(self) -> bool:
        names = self._param_names
        return "t" in names and "weight" not in names

    @property
    def needs_base(self) -> bool:
        """True when the method takes deltas from the shared initial checkpoint."""
        return not self.uses_t and self._method.spec.contract.base == BasePolicy.REQUIRED

    def statistics(self, folders: dict[str, Path]) -> dict[str, Path]:
        """Per role, the statistics file the method reads beside each checkpoint (computed once per checkpoint by
        ``babymerge fisher`` / ``babymerge gram`` and reused at every alpha); empty for other methods."""
        kind = STATISTICS.get(self.method)
        if kind is None or kind.parameter in self.parameters:
            return {}
        return {role: kind.beside(folder) for role, folder in folders.items()}

    def check(self) -> None:
        names = self._param_names
        if "weight" not in names and "t" not in names:
            raise BabymergeError(f"method {self.method!r} has neither a `weight` nor a `t` parameter to set from alpha")
        unknown = set(self.parameters) - names
        if unknown:
            raise BabymergeError(
                f"method {self.method!r} has no parameter {sorted(unknown)}; it takes {', '.join(sorted(names))}"
            )

    def _split_parameters(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """User parameters split into per-model ones and global ones, by mergekit's parameter scope."""
        scopes = {p.name: p.scope.value for p in self._method.spec.parameters}
        per_model = {k: v for k, v in self.parameters.items() if scopes[k] != "shared"}
        shared = {k: v for k, v in self.parameters.items() if scopes[k] == "shared"}
        return per_model, shared

    def mergekit_config(self, text: str | os.PathLike, multimodal: str | os.PathLike, base=None) -> dict:
        """This merge as a mergekit YAML configuration (a dict), with absolute model paths."""
        self.check()
        per_model, shared = self._split_parameters()
        text, multimodal = str(Path(text).resolve()), str(Path(multimodal).resolve())
        if self.uses_t:
            return {
                "merge_method": self.method,
                "base_model": multimodal,
                "models": [{"model": multimodal}, {"model": text}],
                "parameters": {"t": self.alpha, **shared},
                "dtype": DTYPE,
                "out_dtype": DTYPE,
            }
        config: dict[str, Any] = {
            "merge_method": self.method,
            "models": [
                {"model": text, "parameters": {"weight": self.alpha, **per_model}},
                {"model": multimodal, "parameters": {"weight": 1.0 - self.alpha, **per_model}},
            ],
            "dtype": DTYPE,
            "out_dtype": DTYPE,
        }
        if shared:
            config["parameters"] = dict(shared)
        if self.needs_base:
            if base is None:
                raise BabymergeError(f"method {self.method!r} needs the shared initial checkpoint: pass --base")
            config["base_model"] = str(Path(base).resolve())
            config["models"].append({"model": config["base_model"]})
        return config

    def merge(
        self, states: dict[str, dict[str, torch.Tensor]], folders: dict[str, Path] | None = None
    ) -> dict[str, torch.Tensor]:
        """Merge in memory; ``states`` maps ``text``, ``multimodal`` (and ``base``) to state dicts, ``folders``
        the same roles to their checkpoint folders (where a method's statistics files lie)."""
        self.check()
        per_model, shared = self._split_parameters()
        if self.uses_t:
            inputs = {MULTIMODAL: states[MULTIMODAL], TEXT: states[TEXT]}
            params: dict[str, Any] = {"t": self.alpha, **shared}
            base = MULTIMODAL
        else:
            inputs = {TEXT: states[TEXT], MULTIMODAL: states[MULTIMODAL]}
            params = {"weight": {TEXT: self.alpha, MULTIMODAL: 1.0 - self.alpha}, **shared}
            for key, value in per_model.items():
                params[key] = {TEXT: value, MULTIMODAL: value}
            files = self.statistics(folders or {})
            if files:
                params[STATISTICS[self.method].parameter] = {role: str(files[role]) for role in inputs}
            base = None
            if self.needs_base:
                if BASE not in states:
                    raise BabymergeError(f"method {self.method!r} needs the shared initial checkpoint: pass --base")
                inputs[BASE] = states[BASE]
                base = BASE
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return merge_state_dicts(
                inputs, self._method, parameters=params, base=base, dtype=torch.float32, out_dtype=torch.float32
            )


def read_checked(folders: list[str | os.PathLike]) -> list[ModelInputs]:
    """The checkpoints' tensor tables, checked before any work as ``mergekit-yaml`` checks its inputs: one
    tokenizer and one size (``merging.parents``), readable, complete safetensors and finite values (one-line
    errors naming the files, fields or tensors)."""
    models = [read_model(folder) for folder in folders]
    check_parents(models)
    for model in models:
        check_finite(model)
    return models


def load_state(folder: str | os.PathLike, check: bool = True) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint folder (all its safetensors shards), after :func:`read_checked`."""
    if check:
        read_checked([folder])
    return read_state(folder)


def check_same_tensors(folders: dict[str, Path]) -> None:
    """Every model must share one architecture, tokenizer and size (the same tensor names and shapes)."""
    models = [read_model(folder) for folder in folders.values()]
    check_same_architecture(models)
    check_parents(models)


def check_same_states(states: dict[str, dict[str, torch.Tensor]], folders: dict[str, Path]) -> None:
    """Loaded states (a text LM's already under the multimodal names) hold the same tensor names and shapes."""
    (ref_role, ref), *rest = states.items()
    for role, state in rest:
        check_same_shapes(shapes(ref), shapes(state), folders[role], folders[ref_role])
