"""Rerunning `babymerge train` on an existing run folder: a complete run is left untouched, changed settings are
refused in one line before any work (unless --allow-changes, which is recorded, or --restart, which moves the old
run aside), the written train_config.yaml works as --config from anywhere, a failed run leaves no empty folder,
and the loss log after a resume from a checkpoint between logging steps differs in exactly one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_train_resume import Crash, config, start  # noqa: F401  (start: the module's fixture, reused)

from babymerge.cli import main
from babymerge.errors import BabymergeError
from babymerge.training import TrainConfig, train
from babymerge.training import run as run_module


def fingerprint(out) -> dict[str, tuple[int, bytes]]:
    """Modification time and content of every file in a run folder."""
    return {str(p.relative_to(out)): (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def finished(start):  # noqa: F811
    """A complete run (8 steps, a Trainer checkpoint every 4), trained once for the module."""
    return train(config(start, "finished").model_copy(update={"max_steps": 8}))


def test_complete_run_rerun_rewrites_nothing(start, finished, monkeypatch, caplog):  # noqa: F811
    before = fingerprint(finished)
    monkeypatch.setattr(run_module, "load_init", lambda init: pytest.fail("a complete run loaded its model"))
    again = config(start, "finished").model_copy(update={"max_steps": 8, "logging_steps": 4, "progress": True})
    with caplog.at_level("INFO", logger="babymerge.training.run"):
        assert train(again) == finished
    assert fingerprint(finished) == before  # train_config.yaml, checkpoints/final ... untouched
    assert any("already complete (step 8 of 8)" in r.getMessage() for r in caplog.records)


def test_changed_settings_are_refused_naming_every_field(start, finished, capsys):  # noqa: F811
    before = fingerprint(finished)
    yaml_file = finished / "train_config.yaml"
    args = ["train", "--config", str(yaml_file), "--max-steps", "10", "--learning-rate", "1e-3", "--seed", "3"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(finished) in err
    for change in ("max_steps 8 -> 10", "learning_rate 0.0005 -> 0.001", "seed 0 -> 3", "--restart", "--allow-changes"):
        assert change in err
    assert fingerprint(finished) == before


def test_allow_changes_continues_and_records_the_change(start):  # noqa: F811
    out = train(config(start, "extended").model_copy(update={"max_steps": 4}))
    longer = config(start, "extended").model_copy(update={"max_steps": 6, "allow_changes": True})
    train(longer)
    log = [json.loads(line) for line in (out / "resume_log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["changed"] == {"max_steps": [4, 6]} and log[0]["from"].endswith("checkpoint-4")
    assert "max_steps: 6" in (out / "train_config.yaml").read_text()
    assert json.loads((out / "checkpoints" / "final" / "babymerge_training.json").read_text())["global_step"] == 6


def test_restart_moves_the_old_run_aside(start, finished):  # noqa: F811
    other = start[0] / "restarted"
    first = train(config(start, "restarted").model_copy(update={"max_steps": 4}))
    kept = fingerprint(first)
    train(config(start, "restarted").model_copy(update={"max_steps": 8, "restart": True}))
    aside = other.with_name("restarted.old-1")
    assert fingerprint(aside) == kept
    assert not (other / "resume_log.jsonl").exists()
    a, b = (
        load_file(finished / "checkpoints/final/model.safetensors"),
        load_file(other / "checkpoints/final/model.safetensors"),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)  # a fresh run, as if the folder had been empty


def test_written_config_works_from_any_working_folder(start, tmp_path, monkeypatch, capsys):  # noqa: F811
    root, corpus = start
    monkeypatch.chdir(root)
    relative = config(start, "x").model_copy(
        update={"init": root.joinpath("init").relative_to(root), "text": corpus.relative_to(root), "max_steps": 2}
    )
    relative = relative.model_copy(update={"out": relative.out.relative_to(root).with_name("relative")})
    out = train(relative).absolute()
    saved = TrainConfig.model_validate(__import__("yaml").safe_load((out / "train_config.yaml").read_text()))
    assert all(p.is_absolute() for p in (saved.init, saved.text, saved.out, saved.cache_dir))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    before = fingerprint(out)
    assert main(["train", "--config", str(out / "train_config.yaml")]) == 0  # same run: complete, nothing to do
    assert fingerprint(out) == before and not any(elsewhere.iterdir())


def test_failed_run_leaves_no_empty_folder(start, tmp_path):  # noqa: F811
    bad = config(start, "x").model_copy(update={"text": tmp_path / "missing.train", "out": tmp_path / "new" / "run"})
    with pytest.raises(BabymergeError):
        train(bad)
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(BabymergeError):
        train(bad.model_copy(update={"out": existing}))
    assert existing.is_dir()  # not ours to remove


def test_loss_log_after_resume_between_logging_steps(start):  # noqa: F811
    """docs/training.md: resumed from a checkpoint between two logging steps (milestone checkpoints fall on any
    step), the first line after it averages only the steps since the resume; every other line and the weights
    match an uninterrupted run."""
    cfg = config(start, "whole_odd").model_copy(update={"save_steps": 5, "max_steps": 10})
    whole = train(cfg)
    killed = cfg.model_copy(update={"out": start[0] / "killed_odd"})
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(killed, callbacks=[Crash(5)])
    train(killed)
    read = lambda out: [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]  # noqa: E731
    a, b = read(whole), read(killed.out)
    assert [r["step"] for r in a] == [r["step"] for r in b] == [2, 4, 6, 8, 10]
    differ = [x["step"] for x, y in zip(a, b, strict=True) if x != y]
    assert differ == [6] and a[2]["learning_rate"] == b[2]["learning_rate"]
    x, y = (
        load_file(whole / "checkpoints/final/model.safetensors"),
        load_file(killed.out / "checkpoints/final/model.safetensors"),
    )
    assert all(torch.equal(x[k], y[k]) for k in x)


def test_no_progress_silences_transformers_bars(start, capfd):  # noqa: F811
    """--no-progress: no 'Loading weights' / 'Writing model shards' bars from transformers either."""
    cfg = config(start, "quiet").model_copy(update={"max_steps": 4})
    yaml_file = start[0] / "quiet.yaml"
    yaml_file.write_text(cfg.to_yaml())
    assert main(["train", "--config", str(yaml_file), "--no-progress"]) == 0
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "Writing" not in err and "it/s" not in err


def test_train_help_reads_right(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--no-save-final turn off: writing checkpoints/final when training ends" in text
    assert "--restart start afresh" in text and "--allow-changes resume" in text


def test_a_run_saved_with_relative_paths_resumes_from_its_working_folder(start, tmp_path, monkeypatch):  # noqa: F811
    """train_config.yaml of runs made before paths were saved absolute: relative to the working folder then."""
    root, corpus = start
    monkeypatch.chdir(root)
    now = config(start, "old").model_copy(update={"init": Path("init"), "text": corpus.relative_to(root)})
    legacy = now.model_dump(mode="json") | {"out": "old"}
    (root / "old").mkdir()
    (root / "old" / "train_config.yaml").write_text(yaml.safe_dump(legacy))
    assert run_module.changed_settings(root / "old", now.model_copy(update={"out": Path("old")})) == {}
    moved = now.model_copy(update={"text": Path("elsewhere.train"), "out": Path("old")})
    assert run_module.changed_settings(root / "old", moved) == {
        "text": [str(corpus.relative_to(root)), str(root / "elsewhere.train")]  # the old value as written
    }
