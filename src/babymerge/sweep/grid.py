"""A sweep's grid: (pair, merge spec) points x tasks, this process's share of them, and the store key of each
result, whose ``inputs`` digest everything else that determines it: the checkpoints' weights, method parameters
and seed, ``limit``, evaluation data, task definitions and image features."""

from __future__ import annotations

from functools import cache, cached_property
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


class Keys:
    """The store keys of a sweep's results (merge points and the selection rule's checkpoint scores)."""

    def __init__(self, config: SweepConfig):
        self.config = config
        self.fingerprint = cache(checkpoint_fingerprint)

    @cached_property
    def common_inputs(self) -> dict[str, Any]:
        """Inputs shared by every result: limit, evaluation data, task definitions and image features."""
        from ..evaluation import data_dir, tasks_dir

        c = self.config
        tasks = tasks_dir()
        definitions = [p for p in tasks.rglob("*") if p.suffix in (".yaml", ".py")]
        return {
            "limit": c.limit,
            "data": data_fingerprint(data_dir(c.data_dir)),
            "tasks": files_fingerprint(tasks, definitions),
            "features": features_fingerprint(c.features),
        }

    def point_inputs(self, pair: Pair, spec: MergeSpec) -> dict[str, Any]:
        """Everything besides (pair, method, alpha, task) that determines a point's results."""
        text, multimodal = pair
        fields = {"text": self.fingerprint(text.path), "multimodal": self.fingerprint(multimodal.path)}
        if spec.needs_base:
            fields["base"] = self.fingerprint(self.config.base)
        fields |= {"parameters": spec.parameters, "seed": spec.seed if spec.randomised else None}
        return fields | self.common_inputs

    def point(self, pair: Pair, spec: MergeSpec, task: str) -> PointKey:
        return PointKey.make(pair_id(pair), spec.method, spec.alpha, task, digest(self.point_inputs(pair, spec)))

    def checkpoint_inputs(self, role: str, checkpoint: Checkpoint) -> dict[str, Any]:
        return {role: self.fingerprint(checkpoint.path), **self.common_inputs}

    def checkpoint(self, role: str, checkpoint: Checkpoint, task: str) -> PointKey:
        """The key of one checkpoint's own score (the selection rule's)."""
        return PointKey.checkpoint(role, checkpoint.name, task, digest(self.checkpoint_inputs(role, checkpoint)))
