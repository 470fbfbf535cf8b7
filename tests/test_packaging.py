"""babymerge as a user installs it: the package list, and a wheel in a fresh virtual environment driving plain
``lm_eval`` (``--model babyllava``, babymerge's tasks without ``--include_path``) and ``babymerge eval``."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers import REPO, offline_env, source_tree


def test_pyproject_lists_every_package():
    """``packages`` is written out (evaluation_tasks/ is mapped in), so a new subpackage must be added there."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(p.parent.relative_to(REPO / "src").parts) for p in (REPO / "src" / "babymerge").rglob("__init__.py")
    }
    assert set(config["packages"]) == found | {"babymerge.evaluation_tasks"}
    assert config["package-dir"]["babymerge.evaluation_tasks"] == "evaluation_tasks"


def test_help_imports_nothing_heavy():
    """``babymerge --help`` and every subcommand's ``--help`` leave torch, transformers, lm_eval, mergekit out."""
    from babymerge.cli import build_parser

    commands = sorted(build_parser()._subparsers._group_actions[0].choices)
    heavy = ("torch", "transformers", "lm_eval", "mergekit", "datasets", "numpy")
    code = (
        "import sys; from babymerge.cli import main\n"
        "for argv in [['--help']] + [[c, '--help'] for c in sys.argv[1:]]:\n"
        "    try: main(argv)\n"
        "    except SystemExit: pass\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code, *commands], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_preset_names_of_the_light_configs_agree():
    """The configs name the presets without importing the model code (so --help stays light)."""
    from typing import get_args

    from babymerge.modeling import PRESETS
    from babymerge.training.config import Preset

    assert sorted(get_args(Preset)) == sorted(PRESETS)


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory) -> Path:
    """A venv holding only the babymerge wheel built from this tree; dependencies come from the test's own
    environment through a plain-path .pth line (plain paths run no .pth files, so the editable babymerge of
    this environment stays invisible while the wheel's own start-up hook runs)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = source_tree(tmp / "source")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp), "."]
    subprocess.run(build, cwd=source, check=True, capture_output=True, timeout=300)
    (wheel,) = tmp.glob("babymerge-*.whl")
    env = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    python = env / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = [python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    return env


def run_in(env: Path, args: list, cwd: Path | None = None) -> subprocess.CompletedProcess:
    variables = offline_env()
    variables.pop("PYTHONPATH", None)
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=variables, cwd=cwd, timeout=600)


@pytest.mark.slow
def test_wheel_in_a_fresh_env_runs_plain_lm_eval_and_babymerge_eval(fresh_env, tmp_path, layout, make_checkpoint):
    python = fresh_env / "bin" / "python"
    where = run_in(fresh_env, [python, "-c", "import babymerge; print(babymerge.__file__)"], cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(fresh_env), where.stdout + where.stderr

    listed = run_in(fresh_env, [python, "-m", "lm_eval", "ls", "tasks"], cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "babylm_blimp_fast" in listed.stdout and "babylm_wug_adj" in listed.stdout

    checkpoint = make_checkpoint(61)
    metadata = json.dumps({"data_dir": str(layout)})
    plain = [python, "-m", "lm_eval", "run", "--model", "babyllava", "--model_args", f"pretrained={checkpoint}"]
    plain += ["--tasks", "babylm_blimp_fast", "--limit", "3", "--metadata", metadata, "--device", "cpu"]
    done = run_in(fresh_env, plain + ["--output_path", tmp_path / "plain"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    plain_results = json.loads(next((tmp_path / "plain").rglob("results_*.json")).read_text())["results"]

    ours = [fresh_env / "bin" / "babymerge", "eval", checkpoint, "--tasks", "babylm_blimp_fast", "--limit", "3"]
    ours += ["--data-dir", layout, "--output-path", tmp_path / "ours"]  # (--save-to-model refuses a --limit)
    done = run_in(fresh_env, ours, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| babylm_blimp_fast | acc |" in done.stdout
    ours_results = json.loads(next((tmp_path / "ours").rglob("results_*.json")).read_text())["results"]
    assert ours_results["babylm_blimp_fast"]["acc,none"] == plain_results["babylm_blimp_fast"]["acc,none"]
    hf = [
        python,
        "-m",
        "lm_eval",
        "run",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={checkpoint},trust_remote_code=True",
    ]
    hf += ["--tasks", "babylm_blimp_fast", "--limit", "3", "--metadata", metadata, "--device", "cpu"]
    done = run_in(fresh_env, hf, cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "need `--model babyllava`" in done.stderr.strip().splitlines()[-1]


def test_babymerge_eval_indexes_only_babymerge_tasks():
    """Inside ``babymerge_tasks_only`` (used by ``babymerge eval`` for babymerge's tasks) lm-eval's TaskManager
    indexes babymerge's folder alone, not lm-eval's built-in task configs."""
    from lm_eval.tasks import TaskManager

    from babymerge.evaluation.plugin import babymerge_task_names, babymerge_tasks_only

    with babymerge_tasks_only():
        manager = TaskManager()
    assert set(manager.all_tasks) == babymerge_task_names()
    assert {"babylm_text_fast", "babylm_blimp_fast"} <= set(manager.all_tasks)


def test_plain_lm_eval_indexes_only_what_it_needs(monkeypatch):
    """``lm_eval run`` builds its TaskManager in ``EvaluatorConfig.process_tasks``: asked for babymerge's tasks
    only, it indexes babymerge's folder alone (most of plain lm_eval's start-up otherwise); any other task or an
    ``--include_path`` keeps lm-eval's full index. (The data check before indexing has its own tests.)"""
    from lm_eval.config.evaluate_config import EvaluatorConfig

    from babymerge.evaluation import plugin
    from babymerge.evaluation.plugin import babymerge_task_names, index_requested_only

    monkeypatch.setattr(plugin, "check_task_data", lambda *args, **kwargs: None)

    index_requested_only()
    ours = EvaluatorConfig(tasks="babylm_blimp_fast,babylm_ewok_fast")
    assert set(ours.process_tasks({}).all_tasks) == babymerge_task_names()
    assert ours.tasks == ["babylm_blimp_fast", "babylm_ewok_fast"]

    mixed = EvaluatorConfig(tasks=["babylm_blimp_fast", "arc_easy"])
    everything = set(mixed.process_tasks({}).all_tasks)
    assert {"arc_easy", "hellaswag"} <= everything and babymerge_task_names() <= everything
    assert mixed.tasks == ["babylm_blimp_fast", "arc_easy"]
    included = EvaluatorConfig(tasks="babylm_blimp_fast", include_path=str(REPO / "evaluation_tasks"))
    assert "hellaswag" in included.process_tasks({}).all_tasks
