"""Run lm-eval on babyllava: in memory (``evaluate``) or through lm-eval's own CLI (``run_cli``)."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import BabymergeError
from .controls import IMAGE_TASKS, control_of, image_effect, with_controls
from .data import DATA_ENV, data_dir
from .results import metrics


def tasks_dir() -> Path:
    """The installed task folder (``evaluation_tasks/`` of the repository, ``babymerge.evaluation_tasks``)."""
    from .plugin import tasks_path

    return tasks_path()


def evaluate(
    model: Any,
    tokenizer: Any,
    tasks: list[str],
    *,
    data_dir: str | os.PathLike | None = None,
    features: Any = None,
    limit: int | float | None = None,
    batch_size: int = 32,
    log_samples: bool = False,
    include_defaults: bool = False,
    **simple_evaluate_kwargs: Any,
) -> dict[str, Any]:
    """lm-eval's ``simple_evaluate`` on a loaded babyllava model (nothing is saved); returns its results dict.

    ``features``: a feature file path or ``FeatureFile`` for image tasks. ``limit``: documents per task;
    ``samples={task: [doc indices]}`` picks documents instead. ``include_defaults``: also index lm-eval's own
    tasks (e.g. ``blimp``; about 5 s more per call). Other keywords go to ``simple_evaluate``.
    """
    from lm_eval import simple_evaluate

    from .plugin import include_tasks

    include_tasks()
    lm = babyllava_lm(model, tokenizer, features=features, batch_size=batch_size)
    manager = task_manager(tasks, data_dir, include_defaults=include_defaults)
    simple_evaluate_kwargs.setdefault("bootstrap_iters", 0)
    return simple_evaluate(
        model=lm,
        tasks=list(tasks),
        task_manager=manager,
        limit=limit,
        log_samples=log_samples,
        **simple_evaluate_kwargs,
    )


def babyllava_lm(model: Any, tokenizer: Any, *, features: Any = None, batch_size: int = 32) -> Any:
    """lm-eval's ``babyllava`` LM around a loaded model (on the model's device), for ``evaluate`` and the sweep."""
    from . import quiet
    from .lm import BabyLlavaLM

    device = str(next(model.parameters()).device)
    with quiet.loaded_model():  # HFLM's warnings about accelerate and distributed runs do not apply here
        return BabyLlavaLM(
            pretrained=model, tokenizer=tokenizer, features=features, batch_size=batch_size, device=device
        )


def task_manager(
    tasks: Iterable[str], data_dir: str | os.PathLike | None = None, *, include_defaults: bool | None = None
) -> Any:
    """lm-eval's ``TaskManager`` over babymerge's task folder, with the data folder as task metadata.

    lm-eval's ~10k built-in task configs (about 5 s to index) are indexed when ``include_defaults`` is true or,
    when it is None, when some requested task is not babymerge's.
    """
    from lm_eval.tasks import TaskManager

    from .plugin import only_babymerge_tasks

    if include_defaults is None:
        include_defaults = not only_babymerge_tasks(tasks)
    metadata = {"data_dir": str(_resolve_data_dir(data_dir))}
    return TaskManager(include_path=str(tasks_dir()), include_defaults=include_defaults, metadata=metadata)


def _resolve_data_dir(explicit: str | os.PathLike | None) -> Path:
    return data_dir(explicit)


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """``{"task", "metric", "value"}`` per task and metric of an lm-eval results dict (stderr left out)."""
    return [{"task": m.task, "metric": m.name, "value": m.value} for m in metrics(results)]


def summary_table(results: dict[str, Any]) -> str:
    """A markdown table across tasks; values x100 as BabyLM prints them (accuracy %, Spearman x100); a run with a
    document limit says so in the header."""
    limit = (results.get("config") or {}).get("limit")
    score = f"score (limit {float(limit):g} per task)" if limit else "score"
    lines = [f"| task | metric | {score} |", "|---|---|---|"]
    for row in summary_rows(results):
        value = "n/a" if math.isnan(row["value"]) else f"{100 * row['value']:.2f}"
        lines.append(f"| {row['task']} | {row['metric']} | {value} |")
    return "\n".join(lines)


def latest_results_file(output_path: str | os.PathLike) -> Path:
    """The newest ``results_*.json`` lm-eval wrote under ``output_path``."""
    found = sorted(Path(output_path).rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise BabymergeError(f"{output_path}: no results_*.json written by lm-eval")
    return found[-1]


def run_cli(
    model_dir: str,
    tasks: str,
    *,
    output_path: str,
    data_dir: str | None = None,
    features: str | None = None,
    allow_feature_mismatch: bool = False,
    batch_size: str = "32",
    device: str = "cpu",
    limit: str | None = None,
    extra: list[str] | None = None,
    save_to_model: bool = False,
) -> str:
    """Run lm-eval's own CLI with ``--model babyllava``; return the summary table of the results it saved.

    When every requested name is one of babymerge's tasks or groups, lm-eval indexes babymerge's task folder
    only (its ~10k built-in configs are skipped). ``save_to_model`` also writes ``eval_results.json`` (metrics
    only, see :func:`model_results`) into ``model_dir`` for ``babymerge push``.
    """
    model_dir = check_inputs(
        model_dir,
        tasks,
        data_dir=data_dir,
        features=features,
        limit=limit,
        save_to_model=save_to_model,
        allow_feature_mismatch=allow_feature_mismatch,
    )
    from lm_eval.__main__ import cli_evaluate

    from ..io import atomic_file
    from .plugin import include_tasks, index_requested_only, inputs_checked, refuse_other_model_types, register_model

    register_model()
    include_tasks()
    index_requested_only()
    refuse_other_model_types()
    root = _resolve_data_dir(data_dir)
    model_args = f"pretrained={model_dir}" + (f",features={features}" if features else "")
    model_args += ",allow_feature_mismatch=true" if allow_feature_mismatch else ""
    names = with_controls(t for t in tasks.split(",") if t)
    controlled = image_tasks(names)  # each with its control: with_controls added it, the groups list it
    argv = ["lm_eval", "run", "--model", "babyllava", "--model_args", model_args, "--tasks", ",".join(names)]
    argv += ["--log_samples"] if controlled and "--log_samples" not in (extra or []) else []
    argv += ["--metadata", json.dumps({"data_dir": str(root)})]
    argv += ["--batch_size", str(batch_size), "--device", device, "--output_path", output_path]
    argv += ["--limit", str(limit)] if limit else []
    argv += list(extra or [])
    os.environ.setdefault(DATA_ENV, str(root))
    saved, sys.argv = sys.argv, argv
    try:
        with inputs_checked():  # check_inputs above: lm-eval's start-up hook does not check them again
            cli_evaluate()
    finally:
        sys.argv = saved
    results_file = latest_results_file(output_path)
    results = json.loads(results_file.read_text())
    table = summary_table(results)
    effects = [image_effect(t, *(item_values(results_file.parent, n) for n in (t, control_of(t)))) for t in controlled]
    if effects:
        table += "\n\nImages (each image task against its no-image control, paired over items, 95%):\n"
        table += "\n".join(f"- {effect.sentence()}" for effect in effects)
    with atomic_file(results_file.with_name(results_file.stem + "_summary.md")) as tmp:
        tmp.write_text(table + "\n")
    if save_to_model:
        with atomic_file(Path(model_dir) / MODEL_RESULTS_FILE) as tmp:
            tmp.write_text(json.dumps(model_results(results), indent=2) + "\n")
    return table


def image_tasks(names: Iterable[str]) -> list[str]:
    """The image tasks among ``names``, groups expanded."""
    from .plugin import task_data

    return [t for t in task_data(names) if t in IMAGE_TASKS]


def item_values(folder: Path, task: str, metric: str = "acc") -> list[Any]:
    """Per-document ``metric`` values of ``task`` in document order, from the newest ``samples_TASK_<date>.jsonl``
    lm-eval wrote in ``folder`` (``--log_samples``)."""
    pattern = re.compile(rf"samples_{re.escape(task)}_\d{{4}}-.*\.jsonl$")
    found = sorted((p for p in folder.iterdir() if pattern.match(p.name)), key=lambda p: p.stat().st_mtime)
    if not found:
        raise BabymergeError(f"{folder}: no samples file of {task} (lm-eval's --log_samples)")
    rows = [json.loads(line) for line in found[-1].read_text().splitlines() if line.strip()]
    return [row[metric] for row in sorted(rows, key=lambda row: row["doc_id"])]


def check_inputs(
    model: str,
    tasks: str,
    *,
    data_dir: str | None = None,
    features: str | None = None,
    limit: str | None = None,
    save_to_model: bool = False,
    allow_feature_mismatch: bool = False,
) -> str:
    """What ``run_cli`` checks before lm-eval or any model loads, each mistake one line (about a second):
    ``--save-to-model`` with ``--limit``, the model (a missing folder, a training run's folder, a Hub name
    while offline: ``model_source``), ``babylm_*`` task names, the tasks' data and the feature file (present,
    and made with the backbone and pooling the checkpoint's config records, unless ``allow_feature_mismatch``).
    Returns the model as lm-eval should load it (``~`` expanded)."""
    from ..model_source import looks_local, resolve
    from .plugin import check_task_data, check_task_names

    if save_to_model and limit:
        raise BabymergeError(
            f"--save-to-model with --limit {limit}: a subset of each task cannot be published; drop one of them"
        )
    if save_to_model and not looks_local(model):
        raise BabymergeError(f"{model}: not a local model folder; cannot save {MODEL_RESULTS_FILE} into it")
    folder = Path(resolve(model, "model"))
    if folder.is_dir():
        check_model_folder(folder)
    names = [name for name in tasks.split(",") if name]
    check_task_names(names)
    check_task_data(names, data_dir)
    if features and not Path(features).is_file():
        raise BabymergeError(f"{features}: no such feature file (--features; see `babymerge features`)")
    if features and (folder / "config.json").is_file() and not allow_feature_mismatch:
        from types import SimpleNamespace

        from ..features.metadata import mismatch, read_metadata

        config = SimpleNamespace(**json.loads((folder / "config.json").read_text()))
        if problem := mismatch(read_metadata(features), config):
            raise BabymergeError(f"{features}: {problem}; pass --allow-feature-mismatch to evaluate anyway")
    return str(folder)


def check_model_folder(folder: Path) -> None:
    """A checkpoint folder has ``config.json``; a training run's folder is named as such, with its final
    checkpoint (or its milestones) suggested."""
    if (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file():
        return
    checkpoints = folder / "checkpoints"
    if checkpoints.is_dir():
        final = checkpoints / "final"
        found = sorted(p.name for p in checkpoints.iterdir() if (p / "config.json").is_file())
        hint = f"did you mean {final}?" if final.is_dir() else f"its checkpoints: {', '.join(found) or 'none yet'}"
        raise BabymergeError(f"{folder}: a training run folder, not a checkpoint; {hint}")
    raise BabymergeError(f"{folder}: not a checkpoint folder (no config.json)")


MODEL_RESULTS_FILE = "eval_results.json"


def model_results(results: dict[str, Any]) -> dict[str, Any]:
    """What a model folder keeps of an lm-eval results dict: metrics per task (no stderr, no ``sample_len``),
    the document limit, task versions and the lm-eval version; no environment dump, no paths."""
    config = results.get("config") or {}
    table: dict[str, dict[str, float]] = {task: {} for task in results.get("results", {})}
    for metric in metrics(results):
        table[metric.task][metric.key] = metric.value
    return {
        "results": table,
        "limit": config.get("limit"),
        "versions": results.get("versions", {}),
        "lm_eval_version": results.get("lm_eval_version"),
    }
