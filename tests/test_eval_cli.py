"""``babymerge eval`` / ``babymerge data`` and plain ``lm_eval --model hf`` in fresh processes."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import winoground_features


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)


def test_winoground_end_to_end_with_a_feature_file(tmp_path, layout, shared_data, make_checkpoint, cli):
    checkpoint = make_checkpoint(5, vision_feature_dim=512)
    features = tmp_path / "winoground_features.safetensors"
    winoground_features(shared_data).save(features)
    out = tmp_path / "results"
    done = cli(
        *["eval", checkpoint, "--tasks", "babylm_winoground,babylm_blimp_fast", "--features", features],
        *["--data-dir", layout, "--output-path", out, "--limit", "16", "--batch-size", "8"],
        cwd=tmp_path,  # outside a git repository: lm-eval's commit lookup stays quiet there too
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fatal: not a git repository" not in done.stderr
    assert "Custom kwargs" not in done.stderr
    [results_file] = list(out.rglob("results_*.json"))
    results = json.loads(results_file.read_text())["results"]
    for metric in ("acc,none", "text_score,none", "image_score,none", "group_score,none"):
        assert 0.0 <= results["babylm_winoground"][metric] <= 1.0
    assert "| babylm_winoground | group_score |" in done.stdout
    summary = results_file.with_name(results_file.stem + "_summary.md").read_text()
    assert "| babylm_blimp_fast | acc |" in summary


def test_eval_reports_missing_data_in_one_line(tmp_path, make_checkpoint, cli):
    done = cli(
        *["eval", make_checkpoint(6), "--tasks", "babylm_ewok_fast", "--data-dir", tmp_path],
        *["--output-path", tmp_path / "out"],
    )
    assert done.returncode == 2
    assert f"{tmp_path / 'fast_eval' / 'ewok_fast'}: not found (nor ewok_fast.zip)" in done.stderr


def lm_eval_command(model: str, model_args: str, tasks: str, layout, out, *extra: str) -> list[str]:
    """Plain ``lm_eval run``: babymerge's tasks come from the start-up hook, no ``--include_path``."""
    return [sys.executable, "-m", "lm_eval", "run", "--model", model, "--model_args", model_args, "--tasks", tasks] + [
        "--metadata",
        json.dumps({"data_dir": str(layout)}),
        "--device",
        "cpu",
        "--output_path",
        str(out),
        *extra,
    ]


def test_plain_lm_eval_hf_runs_text_tasks(tmp_path, layout, make_checkpoint, offline):
    out = tmp_path / "results"
    args = f"pretrained={make_checkpoint(7)},trust_remote_code=True"
    tasks = "babylm_entity_tracking_fast,babylm_ewok_fast"
    done = run(lm_eval_command("hf", args, tasks, layout, out, "--limit", "4"), offline)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]
    assert set(results) == {"babylm_entity_tracking_fast", "babylm_ewok_fast"}


def test_plain_lm_eval_hf_stops_on_whole_sentence_tasks_in_one_line(tmp_path, layout, make_checkpoint, offline):
    args = f"pretrained={make_checkpoint(7)},trust_remote_code=True"
    done = run(lm_eval_command("hf", args, "babylm_blimp_fast", layout, tmp_path / "out", "--limit", "2"), offline)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("babymerge's whole-sentence and image tasks")
    assert "--model babyllava" in done.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_data_lists_sources(layout, cli):
    done = cli("data", "--data-dir", layout)
    assert done.returncode == 0
    assert "| wug_past | no | no |" in done.stdout and "| ewok_fast | yes | yes |" in done.stdout


def test_data_fails_when_required_data_is_missing(tmp_path, cli):
    done = cli("data", "--data-dir", tmp_path)
    assert done.returncode == 2
    assert f"| blimp_fast | no | yes | {tmp_path / 'fast_eval' / 'blimp_fast'} |" in done.stdout
    [line] = done.stderr.strip().splitlines()
    assert "required data missing: blimp, blimp_fast" in line


def test_save_to_model_needs_a_local_folder(tmp_path, capsys):
    from babymerge.cli import main

    args = ["eval", "someone/on-the-hub", "--tasks", "babylm_blimp_fast", "--output-path", str(tmp_path)]
    assert main(args + ["--save-to-model"]) == 2
    assert "someone/on-the-hub: not a local model folder" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
