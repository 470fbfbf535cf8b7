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

    Inside :func:`babymerge_tasks_only` it indexes babymerge's folder (and given include paths) only. lm-eval's
    advice to pass custom kwargs through ``--metadata`` is not given for babymerge's tasks (``quiet``).
    """
    from lm_eval.tasks import manager

    from . import quiet

    quiet.custom_dataset_advice()

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
        _state.manager = self  # for the did-you-mean of an unknown task (index_requested_only)

    __init__._babymerge = True
    manager.TaskManager.__init__ = __init__


def index_requested_only() -> None:
    """Make ``lm_eval run`` index babymerge's task folder alone when every requested task is babymerge's.

    lm-eval's CLI builds its ``TaskManager`` in ``EvaluatorConfig.process_tasks``; indexing its ~10k built-in
    task configs is most of a plain ``lm_eval`` start-up. Runs that name any other task, a pattern, a file, or
    ``--include_path`` index everything as before. First, before any model loads, an unknown ``babylm_*`` name
    or a babymerge task's missing data stops the run with one line (:class:`UsageError`, in lm_eval's syntax);
    lm-eval's own ``Tasks not found`` becomes one line with a did-you-mean over its index.
    """
    from lm_eval.config.evaluate_config import EvaluatorConfig

    original = EvaluatorConfig.process_tasks
    if getattr(original, "_babymerge", False):
        return

    @functools.wraps(original)
    def process_tasks(self, metadata=None):
        tasks = [self.tasks] if isinstance(self.tasks, str) else list(self.tasks or [])
        names = [name for task in tasks if isinstance(task, str) for name in task.split(",") if name]
        if not getattr(_state, "checked", False):  # ``babymerge eval`` has checked them already
            if self.include_path is None:  # an include path may hold tasks of any name
                check_task_names(names, stop=UsageError)
            given = metadata or {}
            check_task_data(
                names, given.get("data_dir"), captions=given.get("captions"), hint=LM_EVAL_DATA_HINT, stop=UsageError
            )
        ours = tasks and all(isinstance(task, str) for task in tasks) and self.include_path is None
        try:
            if ours and only_babymerge_tasks(names):
                with babymerge_tasks_only():
                    return original(self, metadata)
            return original(self, metadata)
        except ValueError as error:
            if not str(error).startswith("Tasks not found: "):
                raise
            missing = str(error).removeprefix("Tasks not found: ").split(", ")
            known = getattr(getattr(_state, "manager", None), "all_tasks", [])
            raise UsageError(unknown_tasks_message(missing, known)) from None

    process_tasks._babymerge = True
    EvaluatorConfig.process_tasks = process_tasks


def refuse_other_model_types() -> None:
    """Make lm-eval stop before it scores anything when a model type other than ``babyllava`` is given a task
    that only ``babyllava`` scores as BabyLM does (one line, exit status 1). The same check after scoring
    (``metrics.needs_babyllava``) stays for code that does not go through ``lm_eval.evaluator.evaluate``.
    Also asks git for lm-eval's commit record quietly (``quiet.git_lookup``: no ``fatal: not a git repository``)."""
    from lm_eval import evaluator

    from . import quiet

    quiet.git_lookup()

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
def inputs_checked() -> Iterator[None]:
    """Inside, ``lm_eval run`` skips :func:`index_requested_only`'s name and data checks: the caller made them
    before lm-eval loaded (``evaluation.run.check_inputs``), so one ``babymerge eval`` checks its inputs once."""
    _state.checked = True
    try:
        yield
    finally:
        _state.checked = False


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
    return set(_task_configs())


@functools.cache
def _task_configs() -> dict[str, dict]:
    """babymerge's task and group YAMLs by name, ``!function x`` kept as the text ``x`` (nothing imported)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, tag, node: loader.construct_scalar(node))
    configs = {}

    def read(file: Path) -> dict:  # an ``include`` file's keys, then the file's own (as lm-eval merges them)
        config = yaml.load(file.read_text(), Loader=Loader) or {}
        included = config.pop("include", None)
        return {**read(file.parent / included), **config} if included else config

    for file in sorted(tasks_path().glob("*.yaml")):
        config = read(file)
        name = config.get("group") or config.get("task")
        if isinstance(name, str):
            configs[name] = config
    return configs


class UsageError(BabymergeError, SystemExit):
    """A user mistake found before lm-eval loads the model; also a ``SystemExit``, so plain ``lm_eval`` stops
    with this one line (exit status 1) instead of a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = message


BABYMERGE_DATA_HINT = "set --data-dir or $BABYMERGE_DATA"
LM_EVAL_DATA_HINT = """give lm_eval --metadata '{"data_dir": "DIR"}' or set $BABYMERGE_DATA"""
TASK_PREFIX = "babylm_"  # babymerge's tasks and groups; lm-eval ships none with this prefix


def unknown_tasks_message(missing: Iterable[str], known: Iterable[str]) -> str:
    """``tasks not found: x (did you mean 'y'?)``, difflib over ``known``."""
    import difflib

    known = sorted(set(known))
    parts = []
    for name in missing:
        close = difflib.get_close_matches(name, known, n=1)
        parts.append(f"{name} (did you mean {close[0]!r}?)" if close else name)
    return f"tasks not found: {', '.join(parts)}; `lm_eval ls tasks` lists them"


def check_task_names(names: Iterable[str], *, stop: type[BabymergeError] = BabymergeError) -> None:
    """Refuse, at once, ``babylm_*`` names that are none of babymerge's tasks or groups (with a did-you-mean).

    Other names are lm-eval's to judge (its index takes seconds; ``index_requested_only`` adds the hint there).
    """
    ours = babymerge_task_names()
    missing = [n for n in names if n.startswith(TASK_PREFIX) and n not in ours and not _is_pattern(n)]
    if missing:
        raise stop(unknown_tasks_message(missing, ours))


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[") or name.endswith(".yaml")


def task_data(names: Iterable[str]) -> dict[str, str]:
    """``{task: data set}`` (keys of ``data.SOURCES``) for babymerge's tasks among ``names``, groups expanded."""
    from .data import SOURCES

    configs, out = _task_configs(), {}
    pending = [n for n in names if n in configs]
    while pending:
        name = pending.pop(0)
        config = configs[name]
        if "group" in config:
            pending += [t if isinstance(t, str) else t.get("task") for t in config.get("task") or []]
            continue
        builder = str(config.get("custom_dataset", "")).removeprefix("utils.")
        source = builder if builder in SOURCES else builder.removesuffix("_fast")
        if source not in SOURCES:
            raise BabymergeError(f"{name}: task reads data set {builder!r}, unknown to babymerge.evaluation.data")
        out[name] = source
    return out


def check_task_data(
    names: Iterable[str],
    root: str | None,
    *,
    captions: str | None = None,
    hint: str = BABYMERGE_DATA_HINT,
    stop: type[BabymergeError] = BabymergeError,
) -> None:
    """Refuse, before any model loads, babymerge tasks whose data is missing from the data folder ``root``
    (``captions``: a captions file given in lm-eval's metadata, which caption matching reads instead)."""
    from .data import missing_data

    needed = {t: s for t, s in task_data(names).items() if not (captions and s == "caption_matching")}
    problem = missing_data(needed, root, hint)
    if problem:
        raise stop(problem)
