"""The sweep: (pair, method, alpha) points merged in memory and scored through lm-eval, every result stored
as soon as it exists; points are shared among processes (RANK / WORLD_SIZE) writing to one store.

:class:`Sweep` puts together the model slot (``slot.py``), the grid and its store keys (``grid.py``), the
selection rule (``selection.py``) and the results store (``store.py``)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..errors import BabymergeError
from ..evaluation.controls import with_controls
from ..evaluation.stock_llava import is_stock_llava
from ..merging.llava_text import is_text_lm_folder
from .checkpoints import Checkpoint, aligned_pairs, find_checkpoints
from .config import SweepConfig
from .evaluate import TaskScorer, babyllava_scorer, check_raw_images
from .grid import Keys, Pair, my_points, pair_id
from .items import FIELD
from .merge import BASE, MULTIMODAL, STATISTICS, TEXT, MergeSpec, read_checked
from .selection import best_checkpoint, selection_remarks
from .slot import ModelSlot
from .store import PointKey, ResultStore, result_records, shard
from .tasks import is_image_task, point_tasks, title

logger = logging.getLogger(__name__)

ScorerFactory = Callable[[torch.nn.Module, Any, list[str]], TaskScorer]


class Sweep:
    """Runs a :class:`SweepConfig`: one model instance, merged weights loaded into it point after point."""

    def __init__(
        self,
        config: SweepConfig,
        scorer_factory: ScorerFactory | None = None,
        progress: bool = True,
        share_from: Sweep | None = None,
    ):
        """``share_from``: reuse another sweep's model slot and scorer (its tasks must cover these)."""
        self.config = config
        self.progress = progress
        self.store = ResultStore(config.store)
        self.texts = find_checkpoints(config.text)
        self.multimodals = find_checkpoints(config.multimodal)
        self._check_features()
        self._check_inputs()
        self._pairs: list[Pair] | None = None
        self.recomputed = 0  # results present in the store for another set of inputs, scored again
        self.wait_check: Callable[[], None] | None = None  # run while waiting for other ranks; raises to stop
        tasks = list(dict.fromkeys(with_controls(config.tasks) + self._selection_tasks()))  # controls: tasks.py
        if share_from is not None:
            self.slot, self.scorer = share_from.slot, share_from.scorer
            if missing := sorted(set(tasks) - set(self.scorer.tasks)):
                raise BabymergeError(f"the shared scorer lacks tasks {missing}")
        else:
            text_lm = is_text_lm_folder(self.texts[-1].path)  # a plain causal LM: the model is the multimodal one
            self.slot = ModelSlot((self.multimodals if text_lm else self.texts)[-1].path, config.device)
            factory = scorer_factory or self._default_scorer
            self.scorer = factory(self.slot.model, self.slot.tokenizer, tasks)
        self.keys = Keys(config, self.scorer)
        self.random_backbone = self._random_backbone()

    # -- set-up ---------------------------------------------------------------------------------------------
    def _check_features(self) -> None:
        """Image tasks (Winoground, caption matching) need a feature file (a stock LLaVA: raw images in the data
        layout, ``evaluate.check_raw_images``): refused before anything is scored."""
        config = self.config
        selection = self._selection_tasks()
        if is_stock_llava(model := self.multimodals[-1].path):
            return check_raw_images(model, config.tasks, selection, config.data_dir, config.features)
        if config.features is not None and Path(config.features).is_file():
            return
        task = next((t for t in dict.fromkeys(selection + config.tasks) if is_image_task(t)), None)
        if task is None:
            return
        flag = "--select-multimodal-by" if task in selection else "--tasks"
        missing = f"feature file {config.features} not found" if config.features else "no --features given"
        if "winoground" in task:
            make = (
                "`babymerge features WINOGROUND_IMAGES --out winoground_features.safetensors` (facebook/winoground's "
                "images saved as IDX_image_0.png, IDX_image_1.png)"
            )
        else:
            make = "`babymerge features CAPTIONS_FILE --out features.safetensors`"
        message = f"{flag} {task} ({title(task)}) needs image features, but {missing}: make them with {make}"
        message += " and pass --features (docs/sweep.md)"
        if task in selection:
            message += (
                ", or pick the multimodal checkpoint by a task without images with --select-multimodal-by (e.g. "
                "babylm_blimp_fast)"
            )
        raise BabymergeError(message)

    def _check_inputs(self) -> None:
        """Methods known and given a base where they need one; checkpoints checked as mergekit-yaml checks its
        inputs (one tokenizer and size, complete safetensors, finite values)."""
        from ..evaluation.plugin import check_task_names

        config = self.config
        check_task_names([*config.tasks, config.select_text_by, config.select_multimodal_by])  # babylm_* typos
        for spec in config.specs():
            spec.check()
            if spec.needs_base and config.base is None:
                raise BabymergeError(f"method {spec.method!r} needs the shared initial checkpoint: set base (--base)")
        folders = [c.path for c in self.texts + self.multimodals] + [config.base] * bool(config.base)
        read_checked(list(dict.fromkeys(folders)))
        for spec in config.specs():  # a method's statistics files (Fisher's, RegMean's), for every checkpoint
            for path in spec.statistics({c.path: c.path for c in self.texts + self.multimodals}).values():
                if not path.is_file():
                    raise BabymergeError(STATISTICS[spec.method].missing(path))

    @property
    def model(self) -> torch.nn.Module:
        return self.slot.model

    @property
    def tokenizer(self):
        return self.slot.tokenizer

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
        return [task for _, series, task in self._selected_series()]

    def _selected_series(self) -> list[tuple[str, list[Checkpoint], str]]:
        """(role, series, task) of each series the selection rule picks from (``best`` pairing, several
        checkpoints)."""
        if "best" not in self.config.pairing:
            return []
        return [
            (role, series, task)
            for role, series, task in (
                ("text", self.texts, self.config.select_text_by),
                ("multimodal", self.multimodals, self.config.select_multimodal_by),
            )
            if len(series) > 1
        ]

    def _random_backbone(self) -> bool | None:
        if self.config.features is None:
            return None
        from ..features.store import FeatureFile

        return FeatureFile.load(self.config.features).random_backbone

    # -- weights --------------------------------------------------------------------------------------------
    def state(self, folder: Path) -> dict[str, torch.Tensor]:
        """A checkpoint's tensors in the model's layout (text-only LMs under the multimodal model's names)."""
        return self.slot.state(folder, self.multimodals[-1].path)

    def merged_state(self, pair: Pair, spec: MergeSpec) -> dict[str, torch.Tensor]:
        text, multimodal = pair
        folders = {TEXT: text.path, MULTIMODAL: multimodal.path}
        if spec.needs_base:
            folders[BASE] = self.config.base
        return self.slot.merged(folders, spec, self.multimodals[-1].path)

    # -- keys and records -----------------------------------------------------------------------------------
    def point_key(self, pair: Pair, spec: MergeSpec, task: str) -> PointKey:
        return self.keys.point(pair, spec, task)

    def grid_keys(self) -> set[PointKey]:
        """The key of every (point, task) of the grid."""
        specs, tasks = self.config.specs(), self.config.tasks
        return {self.point_key(p, s, t) for p in self.pairs() for s in specs for t in point_tasks(tasks, s.alpha)}

    def selection_keys(self) -> set[PointKey]:
        return {self.keys.checkpoint(role, c, task) for role, series, task in self._selected_series() for c in series}

    def missing(self, keys: list[PointKey]) -> list[PointKey]:
        """The keys the store lacks; those stored for other inputs are counted as recomputed, with a notice that
        says which inputs changed (and for how many results)."""
        todo, stored = self.store.missing(keys)
        if stored:
            self.recomputed += len(stored)
            why = Counter(change for key, fields in stored.items() for change in self.keys.changes(fields, key))
            logger.warning(
                "%s: recomputing %d results stored for other inputs: %s",
                self.store.path,
                len(stored),
                "; ".join(f"{change} ({count})" for change, count in why.most_common()),
            )
        return todo

    def current(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records of this sweep's grid and selection for today's inputs (the store may hold others)."""
        keys = self.grid_keys() | self.selection_keys()
        return [r for r in records if PointKey.of(r) in keys]

    def _score_into_store(self, key: PointKey, fields: dict[str, Any]) -> None:
        start = time.perf_counter()
        rows = self.scorer.score(key.task)
        seconds = time.perf_counter() - start
        kept = getattr(self.scorer, "item_scores", {})  # per-document items, where the scorer keeps them
        rows = [{**r, FIELD: kept[k]} if (k := (r["task"], r["metric"])) in kept else r for r in rows]
        fields = {**fields, "limit": self.config.limit}
        self.store.append_scored(result_records(key, rows, fields, seconds, self.random_backbone))

    # -- the selection rule -----------------------------------------------------------------------------------
    def select(self) -> Pair:
        """The paper's rule (``selection.py``): each series' best checkpoint by its task; single checkpoints are
        taken as they are. Scores are stored (method ``checkpoint``); this process scores its share of them."""
        chosen = {"text": self.texts[-1], "multimodal": self.multimodals[-1]}
        for role, series, task in self._selected_series():
            keys = {self.keys.checkpoint(role, c, task): c for c in series}
            for key in tqdm(
                self.missing(shard(list(keys))), desc=f"selecting {role} by {task}", disable=not self.progress
            ):
                checkpoint = keys[key]
                self.slot.load(self.state(checkpoint.path))
                fields = {
                    role: checkpoint.name,
                    f"{role}_words": checkpoint.words,
                    f"{role}_path": str(checkpoint.path),
                }
                inputs = self.keys.checkpoint_inputs(role, checkpoint, task)
                self._score_into_store(key, fields | {"input_fields": inputs})
            chosen[role] = best_checkpoint(self.store, keys, task, check=self.wait_check)
        for line in self.selection_remarks:
            logger.warning("selection rule: %s", line)
        return chosen["text"], chosen["multimodal"]

    @property
    def selection_remarks(self) -> list[str]:
        """Selection tasks that cannot tell the checkpoints apart (at chance, ties, within one item)."""
        keys = self.selection_keys()  # not self.current(): that needs the pairs, which need this selection
        return selection_remarks([r for r in self.store.records() if PointKey.of(r) in keys])

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
            mine = my_points(self.pairs(), self.config.specs())
            tasks = self.config.tasks
            keys = {self.point_key(p, s, t): i for i, (p, s) in enumerate(mine) for t in point_tasks(tasks, s.alpha)}
            todo: dict[int, list[str]] = {}
            for key in self.missing(list(keys)):
                todo.setdefault(keys[key], []).append(key.task)
            bar = tqdm(todo.items(), desc="sweep", unit="point", disable=not self.progress)
            for i, missing in bar:
                pair, spec = mine[i]
                bar.set_postfix_str(f"{pair_id(pair)} {spec.method} alpha={spec.alpha}")
                self.run_point(pair, spec, missing)
        return self.current(self.store.records(with_items=True))

    def run_point(self, pair: Pair, spec: MergeSpec, tasks: list[str]) -> None:
        start = time.perf_counter()
        self.slot.load(self.merged_state(pair, spec))
        merge_seconds = time.perf_counter() - start
        text, multimodal = pair
        fields = {
            "parameters": spec.parameters,
            "seed": spec.seed,
            "text": text.name,
            "multimodal": multimodal.name,
            "text_words": text.words,
            "multimodal_words": multimodal.words,
            "text_path": str(text.path),
            "multimodal_path": str(multimodal.path),
            "merge_seconds": round(merge_seconds, 4),
        }
        for task in tasks:
            inputs = self.keys.point_inputs(pair, spec, task)
            self._score_into_store(
                self.point_key(pair, spec, task), {**fields, "task_requested": task, "input_fields": inputs}
            )
