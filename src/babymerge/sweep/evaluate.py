"""lm-eval on the sweep's one model instance: the LM wrapper and the task objects are built once and reused
for every merge point, so a point costs a merge, a ``load_state_dict`` and the forward passes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM
from lm_eval.evaluator import evaluate as lm_eval_evaluate

from ..errors import BabymergeError
from ..evaluation.results import metrics
from .items import encode
from .tasks import is_image_task, title


def build_requests_once(task: Any) -> None:
    """Make an lm-eval task build its request ``Instance`` objects once and hand the same ones (with their
    responses cleared) to every later evaluation: the requests of a sweep point never change, only the weights.

    lm-eval renders every document's Jinja templates again on each ``evaluate`` call, which costs more than a
    tiny model's forward passes.
    """
    original = task.build_all_requests
    built: dict[tuple, list] = {}

    def build_all_requests(*args: Any, **kwargs: Any) -> None:
        key = (kwargs.get("limit"), kwargs.get("rank", 0), kwargs.get("world_size", 1), kwargs.get("samples"))
        key = tuple(repr(k) for k in key)
        if key not in built:
            original(*args, **kwargs)
            built[key] = list(getattr(task, "_instances", None) or [])
        for instance in built[key]:
            instance.resps.clear()
            instance.filtered_resps.clear()
        task._instances = list(built[key])

    task.build_all_requests = build_all_requests


def capture_items(task: Any, into: dict[tuple[str, str], list]) -> None:
    """Make an lm-eval task keep the per-document metric items its aggregations are given (what its
    ``process_results`` returned), in ``into[(task name, metric)]``: the scores behind intervals and paired tests."""
    original = task.aggregation
    name = task.config.task

    def keeping(metric: str, aggregate: Any) -> Any:
        def aggregate_and_keep(items: list) -> Any:
            into[(name, metric)] = items  # encoded right after evaluate, before lm-eval drops them
            return aggregate(items)

        return aggregate_and_keep

    task.aggregation = lambda: {metric: keeping(metric, fn) for metric, fn in original().items()}


def _tasks_in(task_dict: dict) -> list[Any]:
    out = []
    for value in task_dict.values():
        out.extend(_tasks_in(value) if isinstance(value, dict) else [value])
    return out


class TaskScorer:
    """Scores ``lm``'s current weights on prebuilt lm-eval task dicts, one requested task at a time.

    ``reads``: the data each requested task's datasets were built from (``evaluation.docs.reading``), when known;
    ``image_tasks``: the requested tasks some of whose documents carry an image (they read the feature file)."""

    def __init__(
        self,
        lm: LM,
        task_dicts: dict[str, dict],
        limit: int | float | None = None,
        reads: dict[str, list[Path]] | None = None,
    ):
        self.lm = lm
        self.task_dicts = task_dicts
        self.limit = limit
        self.reads = reads
        self.image_tasks = set()
        self.items: dict[tuple[str, str], list] = {}
        self.keep_items = True  # False: no per-document items kept (the cost benchmark's other leg)
        self.item_scores: dict[tuple[str, str], str] = {}  # the last ``score`` call's items, by (task, metric)
        for name, task_dict in task_dicts.items():
            for task in _tasks_in(task_dict):
                if hasattr(task, "build_all_requests"):
                    build_requests_once(task)
                if hasattr(task, "aggregation") and hasattr(getattr(task, "config", None), "task"):
                    capture_items(task, self.items)
                if getattr(getattr(task, "config", None), "doc_to_image", None):
                    self.image_tasks.add(name)

    @property
    def tasks(self) -> list[str]:
        return list(self.task_dicts)

    def score(self, task: str) -> list[dict[str, Any]]:
        """``{"task", "metric", "value", "stderr"}`` rows for ``task`` (and its subtasks, when a group); the task's
        own rows also carry ``items``, the documents scored. ``item_scores`` then holds each (sub)task's primary
        metric items, encoded (``items.encode``), by the row's ``(task, metric)``."""
        self.items.clear()
        results = lm_eval_evaluate(
            self.lm, self.task_dicts[task], limit=self.limit, bootstrap_iters=0, log_samples=False, verbosity="ERROR"
        )
        rows = metric_rows(results or {}, task)
        # documents scored (all subtasks of a group): what one item is worth, for the selection rule's remarks
        items = sum(int(n.get("effective", 0)) for n in (results or {}).get("n-samples", {}).values())
        rows = [{**row, "items": items} if row["task"] == task else row for row in rows]
        self.item_scores = item_scores(rows, task, self.items) if self.keep_items else {}
        return rows


def item_scores(rows: list[dict[str, Any]], task: str, captured: dict[tuple[str, str], list]) -> dict[tuple, str]:
    """Each (sub)task's primary-metric items, encoded, by its row's ``(task, metric)``."""
    from .report import primary_metric

    out = {}
    for row in rows:
        kept = captured.get((row["task"].removeprefix(f"{task}/"), row["metric"]))
        if kept and row["metric"] == primary_metric(rows, row["task"]):
            out[(row["task"], row["metric"])] = encode(kept)
    return out


def metric_rows(results: dict[str, Any], task: str) -> list[dict[str, Any]]:
    """The requested task's own metrics, and each subtask's as ``task/subtask`` (``evaluation.results``)."""
    return [
        {
            "task": task if m.task == task else f"{task}/{m.task}",
            "metric": m.label,
            "value": m.value,
            "stderr": m.stderr,
        }
        for m in metrics(results, ("results", "groups"))
    ]


def babyllava_scorer(
    model: Any,
    tokenizer: Any,
    tasks: list[str],
    *,
    data_dir: str | os.PathLike | None = None,
    features: Any = None,
    limit: int | float | None = None,
    batch_size: int = 32,
) -> TaskScorer:
    """A scorer on the repository's lm-eval tasks (``evaluation_tasks/``) through the ``babyllava`` LM type.

    ``model`` is the instance the sweep loads merged weights into; the LM keeps a reference to it.
    """
    from lm_eval.tasks import get_task_dict

    from ..evaluation.docs import reading
    from ..evaluation.run import babyllava_lm, task_manager
    from ..evaluation.stock_llava import is_stock_llava

    lm = babyllava_lm(model, tokenizer, features=features, batch_size=batch_size)
    manager = task_manager(tasks, data_dir)  # lm-eval's own tasks indexed only when one is asked for
    task_dicts, reads = {}, {}
    for task in tasks:
        with reading() as found:
            task_dicts[task] = get_task_dict([task], manager)
        if is_stock_llava(model):  # its image tasks read the raw images: they belong to the results' keys
            found |= image_folders(task_dicts[task])
        reads[task] = sorted(found)
    return TaskScorer(lm, task_dicts, limit=limit, reads=reads)


def image_folders(task_dict: dict) -> set[Path]:
    """The raw-image folders that an image task's documents name (``image_folder``, what a stock LLaVA reads)."""
    found = set()
    for task in _tasks_in(task_dict):
        docs = getattr(task, "eval_docs", None) if getattr(task.config, "doc_to_image", None) else None
        if docs is not None and "image_folder" in docs.column_names:
            found |= {Path(folder) for folder in docs.unique("image_folder")}
    return found


def check_raw_images(
    model: Path, tasks: list[str], selection: list[str], data_dir: Path | None, features: Path | None
) -> None:
    """Before a stock LLaVA loads: no feature file, and raw images in the data layout for each image task (one
    line naming the task, its flag and the folder looked in)."""
    from ..evaluation.data import image_folder
    from ..evaluation.plugin import task_data
    from ..features.images import IMAGE_SUFFIXES

    if features is not None:
        raise BabymergeError(
            f"--features {features}: {model} is a stock LLaVA, which reads raw images through its own image "
            "processor; feature files are for babyllava checkpoints (drop --features)"
        )
    for task, name in task_data([t for t in dict.fromkeys(selection + tasks) if is_image_task(t)]).items():
        folder = image_folder(name, data_dir)
        if not (folder.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())):
            flag = "--select-multimodal-by" if task in selection else "--tasks"
            raise BabymergeError(
                f"{flag} {task} ({title(task)}): a stock LLaVA reads raw images, but {folder} holds none (put the "
                "images there, as docs/evaluation.md says; feature files are for babyllava checkpoints)"
            )
