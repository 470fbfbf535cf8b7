"""Plug babymerge into lm-eval: the ``babyllava`` model type and babymerge's task folder.

lm-eval 0.4.13 has no plugin discovery. The start-up hook (``merging/_autoload.py``) calls these functions as
soon as the matching lm-eval module has loaded, so plain ``lm_eval --model babyllava --tasks babylm_...`` and
``lm_eval ls tasks`` know babymerge; code that runs without the hook can call them itself. All are idempotent
and import nothing heavy (the model class is a lazy registry entry). A ``lm_eval run`` that asks for babymerge's
tasks only indexes babymerge's folder alone (:func:`index_requested_only`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import BabymergeError

MODEL_NAME = "babyllava"
MODEL_TARGET = "babymerge.evaluation.lm:BabyLlavaLM"
_state = threading.local()


def tasks_path() -> Path:
    """The installed task folder (``babymerge.evaluation_tasks``: ``evaluation_tasks/`` of the repository)."""
    spec = importlib.util.find_spec("babymerge.evaluation_tasks")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (Path(folder) / "utils.py").is_file():
            return Path(folder)
    raise BabymergeError(f"babymerge's task folder (babymerge.evaluation_tasks) is not installed; looked in {folders}")


def register_model() -> None:
    """Add ``babyllava`` to lm-eval's model registry (imported only when lm-eval asks for it)."""
    from lm_eval.api.registry import model_registry

    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=MODEL_TARGET)


def _as_list(include_path) -> list:
    if not include_path:
        return []
    return list(include_path) if isinstance(include_path, (list, tuple)) else [include_path]


def include_tasks() -> None:
    """Make every ``TaskManager`` that indexes lm-eval's own tasks also index babymerge's task folder.

    Inside :func:`babymerge_tasks_only` it indexes babymerge's folder (and given include paths) only.
    """
    from lm_eval.tasks import manager

    original = manager.TaskManager.__init__
    if getattr(original, "_babymerge", False):
        return

    @functools.wraps(original)
    def __init__(self, verbosity=None, include_path=None, include_defaults=True, metadata=None):
        if include_defaults or getattr(_state, "only", False):
            ours = tasks_path()
            given = _as_list(include_path)
            if not any(Path(p).resolve() == ours.resolve() for p in given):
                include_path = [ours, *given]
            include_defaults = include_defaults and not getattr(_state, "only", False)
        original(self, verbosity, include_path, include_defaults, metadata)

    __init__._babymerge = True
    manager.TaskManager.__init__ = __init__


def index_requested_only() -> None:
    """Make ``lm_eval run`` index babymerge's task folder alone when every requested task is babymerge's.

    lm-eval's CLI builds its ``TaskManager`` in ``EvaluatorConfig.process_tasks``; indexing its ~10k built-in
    task configs is most of a plain ``lm_eval`` start-up. Runs that name any other task, a pattern, a file, or
    ``--include_path`` index everything as before.
    """
    from lm_eval.config.evaluate_config import EvaluatorConfig

    original = EvaluatorConfig.process_tasks
    if getattr(original, "_babymerge", False):
        return

    @functools.wraps(original)
    def process_tasks(self, metadata=None):
        tasks = [self.tasks] if isinstance(self.tasks, str) else list(self.tasks or [])
        ours = tasks and all(isinstance(task, str) for task in tasks) and self.include_path is None
        if ours and only_babymerge_tasks(name for task in tasks for name in task.split(",")):
            with babymerge_tasks_only():
                return original(self, metadata)
        return original(self, metadata)

    process_tasks._babymerge = True
    EvaluatorConfig.process_tasks = process_tasks


def refuse_other_model_types() -> None:
    """Make lm-eval stop before it scores anything when a model type other than ``babyllava`` is given a task
    that only ``babyllava`` scores as BabyLM does (one line, exit status 1). The same check after scoring
    (``metrics.needs_babyllava``) stays for code that does not go through ``lm_eval.evaluator.evaluate``."""
    from lm_eval import evaluator

    original = evaluator.evaluate
    if getattr(original, "_babymerge", False):
        return

    @functools.wraps(original)
    def evaluate(*args, **kwargs):
        lm = kwargs.get("lm", args[0] if args else None)
        task_dict = kwargs.get("task_dict", args[1] if len(args) > 1 else {})
        inner = getattr(lm, "lm", lm)  # lm-eval's CachingLM wraps the model
        if not type(inner).__module__.startswith("babymerge.") and any(_needs_babyllava(task_dict)):
            from .metrics import WRONG_MODEL_TYPE, ModelTypeError

            raise ModelTypeError(WRONG_MODEL_TYPE)
        return original(*args, **kwargs)

    evaluate._babymerge = True
    evaluator.evaluate = evaluate


def _needs_babyllava(node) -> Iterator[bool]:
    """For every task in a (nested) lm-eval task dict: whether its results need ``babyllava``'s answers."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _needs_babyllava(value)
    else:
        process = getattr(getattr(node, "config", None), "process_results", None)
        yield bool(getattr(process, "needs_babyllava", False))


@contextlib.contextmanager
def babymerge_tasks_only() -> Iterator[None]:
    """TaskManagers made inside skip lm-eval's ~10k built-in task configs (used when only ours are asked for)."""
    include_tasks()
    _state.only = True
    try:
        yield
    finally:
        _state.only = False


def only_babymerge_tasks(tasks: Iterable[str]) -> bool:
    """True when every requested task or group is babymerge's (lm-eval's built-in index is not needed)."""
    return set(tasks) <= babymerge_task_names()


def babymerge_task_names() -> set[str]:
    """Names of babymerge's tasks and groups (from the YAML files, without building lm-eval's index)."""
    import yaml

    names = set()
    for file in tasks_path().glob("*.yaml"):
        text = file.read_text()
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in ("task", "group") and value.strip():
                names.add(yaml.safe_load(value))
    return names
