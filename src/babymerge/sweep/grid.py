"""A sweep's grid: (pair, merge spec) points x tasks, this process's share of them, and the store key of each
result, whose ``inputs`` digest everything else that determines it: the checkpoints' weights, method parameters
and seed, ``limit``, task definitions, and the data and image features that task reads (so a file no task reads
changes no key)."""

from __future__ import annotations

import os
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checkpoints import Checkpoint
from .fingerprint import checkpoint_fingerprint, data_fingerprint, digest, features_fingerprint, files_fingerprint
from .merge import MergeSpec
from .store import PointKey, pair_name, shard

if TYPE_CHECKING:
    from .run import SweepConfig

Pair = tuple[Checkpoint, Checkpoint]
Point = tuple[Pair, MergeSpec]


def pair_id(pair: Pair) -> str:
    return pair_name(pair[0].name, pair[1].name)


def my_points(pairs: list[Pair], specs: list[MergeSpec]) -> list[Point]:
    """This process's share of the points (RANK / WORLD_SIZE)."""
    return shard([(pair, spec) for pair in pairs for spec in specs])


# How a changed input field is named in the sweep's notice (``Keys.changes``).
NAMES = {
    "text": "text-only checkpoint weights",
    "multimodal": "multimodal checkpoint weights",
    "base": "base checkpoint weights",
    "parameters": "--param",
    "seed": "--seed",
    "limit": "--limit",
    "tasks": "task definitions (evaluation_tasks/)",
    "features": "feature file",
}


class Keys:
    """The store keys of a sweep's results (merge points and the selection rule's checkpoint scores).

    ``scorer``: when it tells the data each task reads (``TaskScorer.reads``, ``image_tasks``), a task's key holds
    only those data sets and, for image tasks, the feature file; else every file under the data directory and the
    feature file."""

    def __init__(self, config: SweepConfig, scorer: Any = None):
        self.config = config
        self.reads: dict[str, list[Path]] | None = getattr(scorer, "reads", None)
        self.image_tasks: set[str] = set(getattr(scorer, "image_tasks", ()))
        self.fingerprint = cache(checkpoint_fingerprint)
        self.fields: dict[str, dict[str, Any]] = {}  # each ``inputs`` digest made here -> the fields it digests
        self._task_inputs: dict[str, dict[str, Any]] = {}

    @cached_property
    def common_inputs(self) -> dict[str, Any]:
        """Inputs shared by every result: limit and task definitions."""
        from ..evaluation import tasks_dir

        tasks = tasks_dir()
        definitions = [p for p in tasks.rglob("*") if p.suffix in (".yaml", ".py")]
        return {"limit": self.config.limit, "tasks": files_fingerprint(tasks, definitions)}

    def task_inputs(self, task: str) -> dict[str, Any]:
        """The data ``task`` reads (each data set's folder, zip or captions file by its place in the data dir) and,
        for an image task, the feature file."""
        if task not in self._task_inputs:
            from ..evaluation import data_dir

            c, root = self.config, data_dir(self.config.data_dir)
            if self.reads is None or task not in self.reads:
                fields = {"data": data_fingerprint(root), "features": features_fingerprint(c.features)}
            else:
                fields = {"data": {_place(p, root): data_fingerprint(p) for p in self.reads[task]}}
                if task in self.image_tasks:
                    fields["features"] = features_fingerprint(c.features)
            self._task_inputs[task] = fields
        return self._task_inputs[task]

    def _digest(self, fields: dict[str, Any]) -> str:
        inputs = digest(fields)
        self.fields[inputs] = fields
        return inputs

    def point_inputs(self, pair: Pair, spec: MergeSpec, task: str) -> dict[str, Any]:
        """Everything besides (pair, method, alpha, task) that determines a point's result on ``task``."""
        text, multimodal = pair
        fields = {"text": self.fingerprint(text.path), "multimodal": self.fingerprint(multimodal.path)}
        if spec.needs_base:
            fields["base"] = self.fingerprint(self.config.base)
        fields |= {"parameters": spec.parameters, "seed": spec.seed if spec.randomised else None}
        statistics = spec.statistics({"text": text.path, "multimodal": multimodal.path})
        if statistics:  # the statistics files the method reads (Fisher's), by content
            fields["statistics"] = {role: data_fingerprint(path) for role, path in statistics.items()}
        return fields | self.common_inputs | self.task_inputs(task)

    def point(self, pair: Pair, spec: MergeSpec, task: str) -> PointKey:
        inputs = self._digest(self.point_inputs(pair, spec, task))
        return PointKey.make(pair_id(pair), spec.method, spec.alpha, task, inputs)

    def checkpoint_inputs(self, role: str, checkpoint: Checkpoint, task: str) -> dict[str, Any]:
        return {role: self.fingerprint(checkpoint.path), **self.common_inputs, **self.task_inputs(task)}

    def checkpoint(self, role: str, checkpoint: Checkpoint, task: str) -> PointKey:
        """The key of one checkpoint's own score (the selection rule's)."""
        inputs = self._digest(self.checkpoint_inputs(role, checkpoint, task))
        return PointKey.checkpoint(role, checkpoint.name, task, inputs)

    def changes(self, stored: dict[str, Any] | None, key: PointKey) -> list[str]:
        """What differs between a stored result's ``input_fields`` and ``key``'s, in words (``data X changed``)."""
        if stored is None:
            return ["the stored results predate input fingerprints"]
        now = self.fields[key.inputs]
        out = []
        for name in sorted(set(stored) | set(now)):
            old, new = stored.get(name), now.get(name)
            if old == new:
                continue
            if name == "data" and isinstance(old, dict) and isinstance(new, dict):
                places = sorted(set(old) | set(new))
                out += [f"data {place} changed" for place in places if old.get(place) != new.get(place)]
            elif name == "data" and isinstance(old, dict) != isinstance(new, dict):
                out.append("data key (the files each task reads, or the whole data dir) changed")
            else:
                out.append(f"{NAMES.get(name, name)} changed")
        return out or ["inputs changed"]


def _place(path: Path, root: Path) -> str:
    """``path`` relative to the data dir when inside it (``fast_eval/blimp_fast``), else as given."""
    return Path(os.path.relpath(path, root)).as_posix() if path.is_relative_to(root) else str(path)
