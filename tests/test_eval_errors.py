"""A first-time user's mistakes with ``babymerge eval``, ``babymerge features`` and plain ``lm_eval``: one line,
at once, before any model loads (and never a wait on the Hub for a local path or while offline)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import offline_env

FAST_S = 20  # a fresh Python process that imports babymerge (not torch) and stops; the Hub's retries take 30-100 s
# ``babymerge ARGS``, then which heavy modules it imported: a refusal before any model loads imports none
LIGHT_CLI = [
    sys.executable,
    "-c",
    "import sys; from babymerge.cli import main; code = main(sys.argv[1:]); "
    "print(sorted({'torch', 'transformers', 'lm_eval'} & set(sys.modules))); sys.exit(code)",
]


def fake_checkpoint(folder: Path) -> Path:
    """A folder that passes the input checks but cannot load: any test that reaches a model load fails."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def timed(*args, env: dict[str, str] | None = None, **kwargs) -> tuple[subprocess.CompletedProcess, float]:
    """``babymerge ARGS`` in a fresh process (offline unless ``env``), and the seconds it took."""
    start = time.monotonic()
    command = [*LIGHT_CLI, *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env or offline_env(), **kwargs)
    return done, time.monotonic() - start


def one_line(done: subprocess.CompletedProcess, command: str = "eval") -> str:
    """The one error line of a refusal (exit status 2) that loaded no torch, transformers or lm-eval."""
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", f"imported before refusing: {done.stdout}"
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"babymerge {command}: error: ")
    return line.removeprefix(f"babymerge {command}: error: ")


def unreachable_hub() -> dict[str, str]:
    """Online mode with a Hub endpoint that refuses connections (no network), deterministic on any machine."""
    env = offline_env(HF_ENDPOINT="http://127.0.0.1:9")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        env.pop(name, None)
    return env


EVAL = ["--tasks", "babylm_blimp_fast", "--out", "results"]


def test_missing_local_folder_never_goes_to_the_hub(tmp_path):
    (tmp_path / "merged").mkdir()
    for name in ("merged/nope", "./nope", str(tmp_path / "nope"), "a/b/c"):
        done, seconds = timed("eval", name, *EVAL, cwd=tmp_path, env=unreachable_hub())
        assert one_line(done) == f"{name}: no such folder (the model looks like a local path)"
        assert seconds < FAST_S


def test_run_folder_points_to_its_final_checkpoint(tmp_path):
    fake_checkpoint(tmp_path / "runs" / "text" / "checkpoints" / "final")
    done, seconds = timed("eval", "runs/text", *EVAL, cwd=tmp_path)
    line = one_line(done)
    assert line == "runs/text: a training run folder, not a checkpoint; did you mean runs/text/checkpoints/final?"
    assert seconds < FAST_S
    (tmp_path / "empty").mkdir()
    assert one_line(timed("eval", "empty", *EVAL, cwd=tmp_path)[0]) == "empty: not a checkpoint folder (no config.json)"


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "no-network"])
def test_hub_name_offline_is_one_line_at_once(tmp_path, offline):
    env = offline_env(HF_HUB_CACHE=str(tmp_path / "cache")) if offline else unreachable_hub()
    env["HF_HUB_CACHE"] = str(tmp_path / "cache")
    done, seconds = timed("eval", "someone/model", *EVAL, cwd=tmp_path, env=env)
    reason = "HF_HUB_OFFLINE is set" if offline else "the Hub (127.0.0.1:9) cannot be reached"
    assert one_line(done) == (
        f"someone/model: not a local folder and not in the Hugging Face cache, and {reason}; give the model as a "
        "local folder"
    )
    assert seconds < FAST_S
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"")  # listed, never opened: the backbone is refused first
    done, seconds = timed("features", "images", "--out", "f.safetensors", cwd=tmp_path, env=env)
    line = one_line(done, "features")
    assert line.startswith(f"facebook/dinov2-large: not a local folder and not in the Hugging Face cache, and {reason}")
    assert line.endswith("or use --random-backbone (tests and demos)")
    assert seconds < FAST_S


def test_cached_hub_name_is_read_offline_without_retries(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from babymerge import model_source

    snapshot = tmp_path / "models--someone--model" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--someone--model" / "refs").mkdir()
    (tmp_path / "models--someone--model" / "refs" / "main").write_text("abc")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    for name in model_source.PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    assert model_source.resolve("someone/model", "model") == "someone/model"
    assert constants.HF_HUB_OFFLINE is True  # transformers now reads the cache instead of retrying


def test_task_typo_gets_a_suggestion_at_once(tmp_path):
    fake_checkpoint(tmp_path / "model")
    done, seconds = timed("eval", "model", "--tasks", "babylm_blimp_fastt", "--out", "r", cwd=tmp_path)
    assert one_line(done) == (
        "tasks not found: babylm_blimp_fastt (did you mean 'babylm_blimp_fast'?); `lm_eval ls tasks` lists them"
    )
    assert seconds < FAST_S


def test_missing_data_is_found_before_the_model_loads(tmp_path):
    fake_checkpoint(tmp_path / "model")
    done, seconds = timed("eval", "model", *EVAL, "--data-dir", "nowhere", cwd=tmp_path)
    assert one_line(done) == (
        "nowhere: no such data folder for babylm_blimp_fast (set --data-dir or $BABYMERGE_DATA; see `babymerge data`)"
    )
    assert seconds < FAST_S
    (tmp_path / "data").mkdir()
    args = ["--tasks", "babylm_text_fast", "--out", "r", "--data-dir", "data"]
    line = one_line(timed("eval", "model", *args, cwd=tmp_path)[0])
    assert line.startswith(f"{Path('data/fast_eval/blimp_fast')}: not found (nor blimp_fast.zip) for task data")
    assert "of babylm_blimp_fast; looked in data dir data (set --data-dir or $BABYMERGE_DATA;" in line


def test_missing_feature_file_is_found_before_the_model_loads(tmp_path):
    fake_checkpoint(tmp_path / "model")
    (tmp_path / "data" / "fast_eval" / "blimp_fast").mkdir(parents=True)
    done, _ = timed("eval", "model", *EVAL, "--data-dir", "data", "--features", "f.safetensors", cwd=tmp_path)
    assert one_line(done) == "f.safetensors: no such feature file (--features; see `babymerge features`)"


def test_save_to_model_with_limit_is_refused_at_once(tmp_path):
    fake_checkpoint(tmp_path / "model")
    done, _ = timed("eval", "model", *EVAL, "--save-to-model", "--limit", "20", cwd=tmp_path)
    line = "--save-to-model with --limit 20: a subset of each task cannot be published; drop one of them"
    assert one_line(done) == line


def lm_eval(tmp_path: Path, tasks: str, *metadata: str) -> subprocess.CompletedProcess:
    model = fake_checkpoint(tmp_path / "model")
    args = ["run", "--model", "babyllava", "--model_args", f"pretrained={model}", "--tasks", tasks, *metadata]
    return subprocess.run(
        [sys.executable, "-m", "lm_eval", *args, "--output_path", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=offline_env(BABYMERGE_DATA=""),
        cwd=tmp_path,
        timeout=600,  # a hang guard: lm-eval indexes its tasks first (about 30 s idle, minutes on a loaded machine)
    )


def test_plain_lm_eval_names_missing_data_in_its_own_syntax(tmp_path):
    done = lm_eval(tmp_path, "babylm_blimp_fast", "--metadata", json.dumps({"data_dir": str(tmp_path / "none")}))
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line == (
        f"{tmp_path / 'none'}: no such data folder for babylm_blimp_fast (give lm_eval --metadata "
        """'{"data_dir": "DIR"}' or set $BABYMERGE_DATA; see `babymerge data`)"""
    )
    assert "--data-dir" not in done.stderr


def test_plain_lm_eval_task_typo_gets_a_suggestion(tmp_path):
    done = lm_eval(tmp_path, "babylm_ewok_fastt")
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("tasks not found: babylm_ewok_fastt (did you mean 'babylm_ewok_fast'?);")


def test_every_task_reads_a_known_data_set():
    from babymerge.evaluation.data import SOURCES
    from babymerge.evaluation.plugin import _task_configs, task_data

    configs = _task_configs()
    found = task_data(sorted(configs))
    assert set(found) == {name for name, config in configs.items() if "group" not in config}
    assert set(found.values()) <= set(SOURCES)
    assert task_data(["babylm_text_fast"])["babylm_ewok_fast"] == "ewok_fast"
    assert task_data(["babylm_caption_matching_fast"]) == {"babylm_caption_matching_fast": "caption_matching"}


def test_plain_lm_eval_typo_of_its_own_task_gets_a_suggestion(tmp_path):
    done = lm_eval(tmp_path, "hellaswg")  # lm-eval's index decides (seconds), then one line instead of a traceback
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("tasks not found: hellaswg (did you mean 'hellaswag'?);")
