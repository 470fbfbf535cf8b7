"""Per-checkpoint statistics files of the data-dependent merge methods (Fisher's diagonal, RegMean's Gram
matrices): where they lie beside a checkpoint folder, how a merge input finds its file, and the cached read.

A :class:`Statistics` names the method's per-model parameter, the file suffix and the command that writes the
file: ``ckpt/text`` -> ``ckpt/text.fisher.safetensors`` (``babymerge fisher``), ``ckpt/text.gram.safetensors``
(``babymerge gram``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import BabymergeError


class Statistics(NamedTuple):
    """One method's statistics files: its per-model ``parameter``, the ``suffix`` beside a folder, what they
    are called in messages and the ``command`` that computes them."""

    parameter: str
    suffix: str
    what: str
    command: str

    def beside(self, model_dir: str | os.PathLike) -> Path:
        """The file beside a checkpoint folder: ``ckpt/text`` -> ``ckpt/text<suffix>``."""
        folder = Path(model_dir).resolve()
        return folder.with_name(folder.name + self.suffix)

    def path_of(self, model_id, given: str | None) -> str:
        """The file of one merge input: ``given``, else the file beside the model's folder."""
        if given:
            return given
        path = getattr(getattr(model_id, "model", None), "path", None)
        if path is None:
            raise BabymergeError(
                f"{self.parameter}: input {model_id!r} has no model path; give its parameters.{self.parameter} file"
            )
        return str(self.beside(path))

    def missing(self, path: str | os.PathLike, model: str | None = None) -> str:
        """The one-line refusal of a missing file."""
        of = f" for {model}" if model else ""
        return f"{path}: no {self.what} file{of} (compute it with `{self.command} MODEL`)"

    def check_recipe(self, merge_config) -> None:
        """Before a recipe's merge starts: every model's file exists (one line naming the first missing)."""
        shared = (merge_config.parameters or {}).get(self.parameter)
        given = {str(m.model): (m.parameters or {}).get(self.parameter, shared) for m in merge_config.models or []}
        for model in merge_config.referenced_models():
            setting = given.get(str(model), shared)
            path = self.path_of(model, setting if isinstance(setting, str) else None)
            if not Path(path).is_file():
                raise BabymergeError(self.missing(path, model.model.path))

    def write_missing(self, folders: list[str | os.PathLike], **sample: Any) -> list[Path]:
        """Compute the file beside each checkpoint folder that lacks it, as the command does (``sample``: its
        ``text``, ``captions``, ``features``, ``max_samples``, ``max_length``); returns the files written."""
        from .fisher import fisher_file
        from .gram import gram_file

        write = fisher_file if self == FISHER else gram_file
        return [write(folder, **sample) for folder in dict.fromkeys(folders) if not self.beside(folder).exists()]

    def weighted_inputs(self, method: str, group, files, weight) -> tuple[list[float], list[str]]:
        """One tensor group's per-model weights (refused unless they sum above 0) and statistics files, each
        opened, and so checked, at the group's first tensor."""
        weights = [float(weight[entry.id]) for entry in group.entries]
        if sum(weights) <= 0:
            raise BabymergeError(f"{method}: weights {weights} must sum to more than 0")
        paths = [self.path_of(entry.id, files[entry.id]) for entry in group.entries]
        for path in paths:
            self.open(path)
        return weights, paths

    def open(self, path: str):
        """An open safetensors handle on ``path`` and its tensor names, cached while the file is unchanged (a
        merge opens each parent's file once; a rewritten file is opened again), or a one-line error."""
        if not Path(path).is_file():
            raise BabymergeError(self.missing(path))
        return _open(path, os.stat(path).st_mtime_ns, self.what)


@lru_cache(maxsize=16)
def _open(path: str, _mtime_ns: int, what: str):
    from safetensors import safe_open

    try:
        handle = safe_open(path, framework="pt")
        return handle, frozenset(handle.keys())
    except Exception as error:  # safetensors raises several types for corrupt files
        raise BabymergeError(f"{path}: cannot read {what} ({' '.join(str(error).split())})") from error


FISHER = Statistics("fisher", ".fisher.safetensors", "Fisher statistics", "babymerge fisher")
GRAM = Statistics("gram", ".gram.safetensors", "Gram statistics", "babymerge gram")
