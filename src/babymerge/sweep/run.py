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
from .merge import BASE, MULTIMODAL, TEXT, MergeSpec, check_same_tensors, load_state
from .selection import selection_remarks
from .store import ResultStore, shard

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
            MergeSpec(method=m, alpha=a, parameters=self.method_parameters.get(m, {}))
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
        self._states: dict[Path, dict[str, torch.Tensor]] = {}
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

        return FeatureFile.load(self.config.features).meta.get("random_backbone") == "true"

    def state(self, folder: Path) -> dict[str, torch.Tensor]:
        if folder not in self._states:
            if len(self._states) >= 6:
                self._states.pop(next(iter(self._states)))
            self._states[folder] = self._in_model_layout(folder, load_state(folder))
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

    def _score_into_store(self, task: str, base: dict[str, Any]) -> None:
        start = time.perf_counter()
        rows = self.scorer.score(task)
        self.store.append(self._records(rows, base, time.perf_counter() - start))

    # -- the selection rule -----------------------------------------------------------------------------------
    def select(self) -> Pair:
        """The paper's rule: the best text-only checkpoint by BLiMP, the best multimodal by Winoground (or caption
        matching); single checkpoints are taken as they are. Scores are stored (method ``checkpoint``)."""
        chosen = []
        for role, series, task in (
            ("text", self.texts, self.config.select_text_by),
            ("multimodal", self.multimodals, self.config.select_multimodal_by),
        ):
            if len(series) == 1:
                chosen.append(series[0])
                continue
            done = self.store.done()
            todo = [c for c in series if (f"{role}={c.name}", SELECT, None, task) not in done]
            for checkpoint in tqdm(shard(todo), desc=f"selecting {role} by {task}", disable=not self.progress):
                self.load_weights(self.state(checkpoint.path))
                base = {"pair": f"{role}={checkpoint.name}", "method": SELECT, "alpha": None, role: checkpoint.name}
                base |= {f"{role}_words": checkpoint.words, f"{role}_path": str(checkpoint.path)}
                self._score_into_store(task, base)
            chosen.append(self._best(role, series, task))
        for line in self.selection_remarks:
            logging.getLogger(__name__).warning("selection rule: %s", line)
        return chosen[0], chosen[1]

    @property
    def selection_remarks(self) -> list[str]:
        """Selection tasks that cannot tell the checkpoints apart (at chance, ties, within one item)."""
        return selection_remarks(self.store.records())

    def _best(self, role: str, series: list[Checkpoint], task: str, wait_s: float = 3600) -> Checkpoint:
        """The checkpoint with the highest ``acc`` (first metric otherwise); waits for other ranks' scores."""
        deadline = time.monotonic() + wait_s
        while True:
            scores: dict[str, float] = {}
            for r in self.store.records():
                if r["method"] == SELECT and r["task"] == task and r["pair"].startswith(f"{role}="):
                    if r["metric"] == "acc" or r["pair"] not in scores:
                        scores[r["pair"]] = r["value"]
            if all(f"{role}={c.name}" in scores for c in series):
                # Ties go to the later checkpoint (more words seen): series are sorted by words.
                return max(reversed(series), key=lambda c: scores[f"{role}={c.name}"])
            if time.monotonic() > deadline:
                raise BabymergeError(f"{self.store.path}: selection scores for {role} checkpoints never arrived")
            time.sleep(2)

    def pairs(self) -> list[Pair]:
        out: list[Pair] = []
        for kind in self.config.pairing:
            if kind == "best":
                out.append(self.select())
            elif kind == "final":
                out.append((self.texts[-1], self.multimodals[-1]))
            else:
                out.extend(aligned_pairs(self.texts, self.multimodals))
        return list(dict.fromkeys(out))

    # -- the grid -------------------------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        """Score every point this process owns that the store lacks; return all records in the store."""
        pairs = self.pairs()
        points = [(pair, spec) for pair in pairs for spec in self.config.specs()]
        done = self.store.done()
        todo = []
        for pair, spec in shard(points):
            missing = [t for t in self.config.tasks if (pair_id(pair), spec.method, spec.alpha, t) not in done]
            if missing:
                todo.append((pair, spec, missing))
        bar = tqdm(todo, desc="sweep", unit="point", disable=not self.progress)
        for pair, spec, missing in bar:
            bar.set_postfix_str(f"{pair_id(pair)} {spec.method} alpha={spec.alpha}")
            self.run_point(pair, spec, missing)
        return self.store.records()

    def merged_state(self, pair: Pair, spec: MergeSpec) -> dict[str, torch.Tensor]:
        text, multimodal = pair
        states = {TEXT: self.state(text.path), MULTIMODAL: self.state(multimodal.path)}
        folders = {TEXT: text.path, MULTIMODAL: multimodal.path}
        if spec.needs_base:
            states[BASE], folders[BASE] = self.state(self.config.base), self.config.base
        check_same_tensors(states, folders)
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
            "pair": pair_id(pair),
            "method": spec.method,
            "alpha": spec.alpha,
            "parameters": spec.parameters,
            "text": text.name,
            "multimodal": multimodal.name,
            "text_words": text.words,
            "multimodal_words": multimodal.words,
            "text_path": str(text.path),
            "multimodal_path": str(multimodal.path),
            "merge_seconds": round(merge_seconds, 4),
        }
        for task in tasks:
            self._score_into_store(task, {**base, "task_requested": task})


def run_sweep(config: SweepConfig, scorer_factory: ScorerFactory | None = None, progress: bool = True) -> list[dict]:
    """Run (or resume) the sweep and return every record in its store."""
    return Sweep(config, scorer_factory, progress).run()
