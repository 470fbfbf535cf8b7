"""The sweep: (pair, method, alpha) points merged in memory and scored through lm-eval, every result stored
as soon as it exists; points are shared among processes (RANK / WORLD_SIZE) writing to one store."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tqdm.auto import tqdm

from ..errors import BabymergeError
from ..merging.llava_text import as_multimodal_state, is_text_lm_folder, multimodal_only_names
from .checkpoints import Checkpoint, aligned_pairs, find_checkpoints
from .evaluate import TaskScorer, babyllava_scorer
from .fingerprint import checkpoint_fingerprint, data_fingerprint, digest, files_fingerprint
from .merge import BASE, MULTIMODAL, TEXT, MergeSpec, check_same_states, check_same_tensors, load_state, read_checked
from .selection import selection_remarks
from .store import LEGACY, PointKey, ResultStore, shard

logger = logging.getLogger(__name__)

DEFAULT_ALPHAS = [round(0.1 * i, 1) for i in range(11)]  # holds the paper's 0.3, 0.5 and 0.8
DEFAULT_METHODS = ["linear", "task_arithmetic", "ties"]
SELECT = "checkpoint"  # the ``method`` of single-checkpoint results used by the selection rule


class SweepConfig(BaseModel):
    """What to sweep: two checkpoint series (or models), methods, alphas, tasks, and where results go."""

    model_config = ConfigDict(extra="forbid")

    text: Path = Field(description="text-only checkpoint, or a training run / folder of milestone checkpoints")
    multimodal: Path = Field(description="multimodal checkpoint, or a series as for text")
    base: Path | None = Field(None, description="the shared initial checkpoint (task_arithmetic, ties, ...)")
    methods: list[str] = Field(default_factory=lambda: list(DEFAULT_METHODS))
    method_parameters: dict[str, dict[str, Any]] = Field(default_factory=dict, description="extra mergekit params")
    alphas: list[float] = Field(default_factory=lambda: list(DEFAULT_ALPHAS), description="text-only model's share")
    tasks: list[str] = Field(default_factory=lambda: ["babylm_blimp_fast"])
    pairing: list[Literal["best", "aligned", "final"]] = Field(
        default_factory=lambda: ["best"],
        description="best: the paper's selection rule; aligned: checkpoint by checkpoint; final: last of each",
    )
    select_text_by: str = Field("babylm_blimp_fast", description="task that picks the best text-only checkpoint")
    select_multimodal_by: str = Field("babylm_winoground", description="task that picks the best multimodal one")
    store: Path = Field(description="results store (JSONL), shared by every process of the sweep")
    data_dir: Path | None = None
    features: Path | None = None
    limit: int | None = Field(None, gt=0, description="documents per task (for quick looks)")
    seed: int = Field(0, description="seed of randomised methods (dare_*, della*): a point merges the same each time")
    batch_size: int = Field(32, ge=1)
    device: str = "cpu"

    @field_validator("alphas")
    @classmethod
    def _alphas_in_range(cls, alphas: list[float]) -> list[float]:
        bad = [a for a in alphas if not 0.0 <= a <= 1.0]
        if bad or not alphas:
            raise ValueError(f"alphas must be a non-empty list within [0, 1]; found {bad or alphas}")
        return sorted({round(a, 6) for a in alphas})

    def specs(self) -> list[MergeSpec]:
        return [
            MergeSpec(method=m, alpha=a, parameters=self.method_parameters.get(m, {}), seed=self.seed)
            for m in self.methods
            for a in self.alphas
        ]


Pair = tuple[Checkpoint, Checkpoint]
ScorerFactory = Callable[[torch.nn.Module, Any, list[str]], TaskScorer]


def pair_id(pair: Pair) -> str:
    return f"text={pair[0].name}+multimodal={pair[1].name}"


class Sweep:
    """Runs a :class:`SweepConfig`: one model instance, merged weights loaded into it point after point."""

    def __init__(
        self,
        config: SweepConfig,
        scorer_factory: ScorerFactory | None = None,
        progress: bool = True,
        share_from: Sweep | None = None,
    ):
        """``share_from``: reuse another sweep's model instance and scorer (its tasks must cover these)."""
        self.config = config
        self.progress = progress
        self.store = ResultStore(config.store)
        self.texts = find_checkpoints(config.text)
        self.multimodals = find_checkpoints(config.multimodal)
        for spec in config.specs():
            spec.check()
            if spec.needs_base and config.base is None:
                raise BabymergeError(f"method {spec.method!r} needs the shared initial checkpoint: set base (--base)")
        for folder in dict.fromkeys(
            [c.path for c in self.texts + self.multimodals] + [config.base] * bool(config.base)
        ):
            read_checked(folder)  # as mergekit-yaml checks its inputs: complete safetensors, finite values
        self._states: dict[Path, dict[str, torch.Tensor]] = {}
        self._fingerprints: dict[Path, str] = {}
        self._checked: set[tuple[Path, ...]] = set()
        self._inputs_common: dict[str, Any] | None = None
        self._pairs: list[Pair] | None = None
        self.recomputed = 0  # results present in the store for another set of inputs, scored again
        tasks = list(dict.fromkeys(config.tasks + self._selection_tasks()))
        if share_from is not None:
            self.model, self.tokenizer, self.scorer = share_from.model, share_from.tokenizer, share_from.scorer
            if missing := sorted(set(tasks) - set(self.scorer.tasks)):
                raise BabymergeError(f"the shared scorer lacks tasks {missing}")
        else:
            text_lm = is_text_lm_folder(self.texts[-1].path)  # a plain causal LM: the model is the multimodal one
            self.model, self.tokenizer = self._load_model((self.multimodals if text_lm else self.texts)[-1].path)
            factory = scorer_factory or self._default_scorer
            self.scorer = factory(self.model, self.tokenizer, tasks)
        self.random_backbone = self._random_backbone()

    # -- set-up ---------------------------------------------------------------------------------------------
    def _load_model(self, folder: Path):
        from transformers import AutoTokenizer

        from ..modeling import BabyLlavaForConditionalGeneration

        model = BabyLlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
        model.to(self.device).eval()
        return model, AutoTokenizer.from_pretrained(folder)

    @property
    def device(self) -> str:
        """``cuda`` under torchrun / accelerate means this process's GPU (``cuda:$LOCAL_RANK``)."""
        if self.config.device == "cuda" and "LOCAL_RANK" in os.environ:
            return f"cuda:{os.environ['LOCAL_RANK']}"
        return self.config.device

    def _default_scorer(self, model, tokenizer, tasks: list[str]) -> TaskScorer:
        c = self.config
        return babyllava_scorer(
            model,
            tokenizer,
            tasks,
            data_dir=c.data_dir,
            features=c.features,
            limit=c.limit,
            batch_size=c.batch_size,
        )

    def _selection_tasks(self) -> list[str]:
        if "best" not in self.config.pairing:
            return []
        tasks = []
        if len(self.texts) > 1:
            tasks.append(self.config.select_text_by)
        if len(self.multimodals) > 1:
            tasks.append(self.config.select_multimodal_by)
        return tasks

    def _random_backbone(self) -> bool | None:
        if self.config.features is None:
            return None
        from ..features.store import FeatureFile

        return FeatureFile.load(self.config.features).random_backbone

    def state(self, folder: Path) -> dict[str, torch.Tensor]:
        """A checkpoint's tensors, checked like ``mergekit-yaml``'s inputs (readable, complete, finite)."""
        if folder not in self._states:
            if len(self._states) >= 6:
                self._states.pop(next(iter(self._states)))
            state = load_state(folder, check=False)  # checked when the sweep began
            self._states[folder] = self._in_model_layout(folder, state)
        return self._states[folder]

    def _in_model_layout(self, folder: Path, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A text-only LM's tensors under the multimodal model's names (merging/llava_text.py); others as they are."""
        if not is_text_lm_folder(folder):
            return state
        multimodal = self.multimodals[-1].path
        return as_multimodal_state(state, folder, self.state(multimodal), multimodal)

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Copy ``state`` into the one model instance (in place: the LM wrapper keeps its reference)."""
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise BabymergeError(
                f"merged weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )

    # -- records --------------------------------------------------------------------------------------------
    def _records(self, rows: list[dict], base: dict[str, Any], seconds: float) -> list[dict]:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        extra = {"seconds": round(seconds, 4), "time": stamp, "rank": int(os.environ.get("RANK", 0))}
        extra["random_backbone"] = self.random_backbone
        return [{**base, **row, **extra} for row in rows]

    def _score_into_store(self, key: PointKey, base: dict[str, Any]) -> None:
        start = time.perf_counter()
        rows = self.scorer.score(key.task)
        base = {**base, **key.fields()}
        self.store.append(self._records(rows, base, time.perf_counter() - start))

    # -- keys: what determines a result -----------------------------------------------------------------------
    def fingerprint(self, folder: Path) -> str:
        if folder not in self._fingerprints:
            self._fingerprints[folder] = checkpoint_fingerprint(folder)
        return self._fingerprints[folder]

    def _common_inputs(self) -> dict[str, Any]:
        """Inputs shared by every result: limit, evaluation data, task definitions and image features."""
        if self._inputs_common is None:
            from ..evaluation import data_dir, tasks_dir

            c = self.config
            tasks = tasks_dir()
            definitions = [p for p in tasks.rglob("*") if p.suffix in (".yaml", ".py")]
            self._inputs_common = {
                "limit": c.limit,
                "data": data_fingerprint(data_dir(c.data_dir)),
                "tasks": files_fingerprint(tasks, definitions),
                "features": data_fingerprint(c.features),
            }
        return self._inputs_common

    def point_inputs(self, pair: Pair, spec: MergeSpec) -> dict[str, Any]:
        """Everything besides (pair, method, alpha, task) that determines a point's results."""
        text, multimodal = pair
        fields = {"text": self.fingerprint(text.path), "multimodal": self.fingerprint(multimodal.path)}
        if spec.needs_base:
            fields["base"] = self.fingerprint(self.config.base)
        fields |= {"parameters": spec.parameters, "seed": spec.seed if spec.randomised else None}
        return fields | self._common_inputs()

    def point_key(self, pair: Pair, spec: MergeSpec, task: str) -> PointKey:
        return PointKey.make(pair_id(pair), spec.method, spec.alpha, task, digest(self.point_inputs(pair, spec)))

    def checkpoint_inputs(self, role: str, checkpoint: Checkpoint) -> dict[str, Any]:
        return {role: self.fingerprint(checkpoint.path), **self._common_inputs()}

    def checkpoint_key(self, role: str, checkpoint: Checkpoint, task: str) -> PointKey:
        """The key of one checkpoint's own score (the selection rule's)."""
        inputs = digest(self.checkpoint_inputs(role, checkpoint))
        return PointKey.make(f"{role}={checkpoint.name}", SELECT, None, task, inputs)

    def grid_keys(self) -> set[PointKey]:
        """The key of every (point, task) of the grid."""
        return {self.point_key(p, s, t) for p in self.pairs() for s in self.config.specs() for t in self.config.tasks}

    def missing(self, keys: list[PointKey]) -> list[PointKey]:
        """The keys the store lacks; those stored for other inputs are counted as recomputed, with a notice."""
        done = self.store.done()
        todo = [k for k in keys if k not in done]
        stored_points = {k[:4] for k in done}
        changed = [k for k in todo if k[:4] in stored_points]
        if changed:
            legacy = sum(k.inputs == LEGACY for k in done)
            why = f"; {legacy} stored results predate input fingerprints" if legacy else ""
            logger.warning(
                "%s: recomputing %d results stored for other inputs (weights, --param, --seed, --limit or data "
                "changed%s)",
                self.store.path,
                len(changed),
                why,
            )
            self.recomputed += len(changed)
        return todo

    def current(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records of this sweep's grid and selection for today's inputs (the store may hold others)."""
        keys = self.grid_keys() | self.selection_keys()
        return [r for r in records if PointKey.of(r) in keys]

    def selection_keys(self) -> set[PointKey]:
        keys = set()
        for role, series, task in self._series():
            if len(series) > 1 and "best" in self.config.pairing:
                keys |= {self.checkpoint_key(role, c, task) for c in series}
        return keys

    def _series(self) -> list[tuple[str, list[Checkpoint], str]]:
        return [
            ("text", self.texts, self.config.select_text_by),
            ("multimodal", self.multimodals, self.config.select_multimodal_by),
        ]

    # -- the selection rule -----------------------------------------------------------------------------------
    def select(self) -> Pair:
        """The paper's rule: the best text-only checkpoint by BLiMP, the best multimodal by Winoground (or caption
        matching); single checkpoints are taken as they are. Scores are stored (method ``checkpoint``)."""
        chosen = []
        for role, series, task in self._series():
            if len(series) == 1:
                chosen.append(series[0])
                continue
            keys = {self.checkpoint_key(role, c, task): c for c in series}
            todo = self.missing(list(keys))
            for key in tqdm(shard(todo), desc=f"selecting {role} by {task}", disable=not self.progress):
                checkpoint = keys[key]
                self.load_weights(self.state(checkpoint.path))
                base = {role: checkpoint.name, f"{role}_words": checkpoint.words, f"{role}_path": str(checkpoint.path)}
                self._score_into_store(key, base | {"input_fields": self.checkpoint_inputs(role, checkpoint)})
            chosen.append(self._best(keys, task))
        for line in self.selection_remarks:
            logger.warning("selection rule: %s", line)
        return chosen[0], chosen[1]

    @property
    def selection_remarks(self) -> list[str]:
        """Selection tasks that cannot tell the checkpoints apart (at chance, ties, within one item)."""
        keys = self.selection_keys()  # not self.current(): that needs the pairs, which need this selection
        return selection_remarks([r for r in self.store.records() if PointKey.of(r) in keys])

    def _best(self, keys: dict[PointKey, Checkpoint], task: str, wait_s: float = 3600) -> Checkpoint:
        """The checkpoint with the highest ``acc`` (first metric otherwise); waits for other ranks' scores."""
        deadline = time.monotonic() + wait_s
        while True:
            scores: dict[PointKey, float] = {}
            for r in self.store.records():
                key = PointKey.of(r)
                if key in keys and (r["metric"] == "acc" or key not in scores):
                    scores[key] = r["value"]
            if len(scores) == len(keys):
                # Ties go to the later checkpoint (more words seen): series are sorted by words.
                ranked = {c: scores[k] for k, c in keys.items()}
                return max(reversed(list(ranked)), key=ranked.__getitem__)
            if time.monotonic() > deadline:
                raise BabymergeError(f"{self.store.path}: selection scores for {task} never arrived from other ranks")
            time.sleep(2)

    def pairs(self) -> list[Pair]:
        if self._pairs is None:
            out: list[Pair] = []
            for kind in self.config.pairing:
                if kind == "best":
                    out.append(self.select())
                elif kind == "final":
                    out.append((self.texts[-1], self.multimodals[-1]))
                else:
                    out.extend(aligned_pairs(self.texts, self.multimodals))
            self._pairs = list(dict.fromkeys(out))
        return self._pairs

    # -- the grid -------------------------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        """Score every point this process owns that the store lacks; return this grid's records.

        Only one sweep at a time may write a store (ranks of one distributed sweep share it).
        """
        with self.store.sole_writer():
            pairs = self.pairs()
            points = [(pair, spec) for pair in pairs for spec in self.config.specs()]
            mine = shard(points)
            keys = {self.point_key(p, s, t): i for i, (p, s) in enumerate(mine) for t in self.config.tasks}
            todo: dict[int, list[str]] = {}
            for key in self.missing(list(keys)):
                todo.setdefault(keys[key], []).append(key.task)
            bar = tqdm(todo.items(), desc="sweep", unit="point", disable=not self.progress)
            for i, missing in bar:
                pair, spec = mine[i]
                bar.set_postfix_str(f"{pair_id(pair)} {spec.method} alpha={spec.alpha}")
                self.run_point(pair, spec, missing)
        return self.current(self.store.records())

    def merged_state(self, pair: Pair, spec: MergeSpec) -> dict[str, torch.Tensor]:
        text, multimodal = pair
        folders = {TEXT: text.path, MULTIMODAL: multimodal.path}
        if spec.needs_base:
            folders[BASE] = self.config.base
        states = {role: self.state(folder) for role, folder in folders.items()}
        if tuple(folders.values()) not in self._checked:
            if is_text_lm_folder(text.path):  # LM names mapped into the multimodal layout (llava_text.py)
                check_same_states(states, folders)
            else:
                check_same_tensors(folders)
            self._checked.add(tuple(folders.values()))
        merged = spec.merge(states)
        if is_text_lm_folder(text.path):  # vision/projector tensors whole from the multimodal model
            merged |= {n: states[MULTIMODAL][n] for n in multimodal_only_names(multimodal.path, merged)}
        return merged

    def run_point(self, pair: Pair, spec: MergeSpec, tasks: list[str]) -> None:
        start = time.perf_counter()
        self.load_weights(self.merged_state(pair, spec))
        merge_seconds = time.perf_counter() - start
        text, multimodal = pair
        base = {
            "parameters": spec.parameters,
            "seed": spec.seed,
            "input_fields": self.point_inputs(pair, spec),
            "text": text.name,
            "multimodal": multimodal.name,
            "text_words": text.words,
            "multimodal_words": multimodal.words,
            "text_path": str(text.path),
            "multimodal_path": str(multimodal.path),
            "merge_seconds": round(merge_seconds, 4),
        }
        for task in tasks:
            self._score_into_store(self.point_key(pair, spec, task), {**base, "task_requested": task})
