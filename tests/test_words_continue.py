"""Words seen continue from a trained init (issue 23): a run started from a checkpoint of `babymerge train` counts
on from that checkpoint's words seen N (milestones above N only, the loss log, every checkpoint's metadata),
`reset_words` counts from 0 again, a resume keeps the run's own count; and every milestone checkpoint is written
at the first optimizer step whose words seen reach it. Self-contained: a generated corpus, a tiny model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_train_resume import Crash, start  # noqa: F401  (start: the module's fixture, reused)
from test_train_resume import config as base_config

from babymerge.cli import main
from babymerge.training import TrainConfig, milestone_name, train
from babymerge.training.milestones import milestones

UNIT = 100  # milestones 100, 200 ... 1000, 2000 ...: ~55 words a step here, so most steps reach one


def config(start, name: str, **fields) -> TrainConfig:  # noqa: F811
    """A 6-step run that logs every step (so the loss log holds each step's words seen)."""
    defaults = {"max_steps": 6, "logging_steps": 1, "milestone_unit": UNIT}
    return base_config(start, name).model_copy(update=defaults | fields)


def loss_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]


def meta(folder: Path) -> dict:
    return json.loads((folder / "babymerge_training.json").read_text())


def session_words(out: Path) -> int:
    return json.loads((out / "throughput.json").read_text())["words"]


def check_first_steps(out: Path, start_words: int) -> None:
    """Each milestone folder was written at the first step whose words seen reach it (words seen at the step
    before were below it), with the words seen of that step; a step reaching several writes only the largest;
    no other milestone folder exists."""
    words = {0: start_words} | {row["step"]: row["words_seen"] for row in loss_log(out)}
    assert sorted(words) == list(range(len(words)))  # every step logged
    expected = {}
    for step in range(1, len(words)):
        if reached := [m for m in milestones(UNIT) if words[step - 1] < m <= words[step]]:
            record = {"milestone": reached[-1], "global_step": step, "words": words[step]}
            expected[milestone_name(reached[-1])] = record
    found = {
        p.name: {"milestone": m["milestone"], "global_step": m["global_step"], "words": m["words_seen"]}
        for p in (out / "checkpoints").iterdir()
        if p.name != "final" and (m := meta(p))
    }
    assert found == expected and len(expected) >= 3


@pytest.fixture(scope="module")
def seed_run(start):  # noqa: F811
    """A run from the `babymerge init` checkpoint: the trained init of the other runs."""
    return train(config(start, "seed"))


def test_a_fresh_init_counts_from_zero(seed_run):
    final = meta(seed_run / "checkpoints" / "final")
    assert final["init_words_seen"] == 0
    assert final["words_seen"] == session_words(seed_run) == loss_log(seed_run)[-1]["words_seen"]
    check_first_steps(seed_run, 0)


def test_words_seen_continue_from_a_trained_init(start, seed_run):  # noqa: F811
    n = meta(seed_run / "checkpoints" / "final")["words_seen"]
    out = train(config(start, "continued", init=seed_run / "checkpoints" / "final"))
    rows = loss_log(out)
    assert all(row["words_seen"] > n for row in rows)
    final = meta(out / "checkpoints" / "final")
    assert final["init_words_seen"] == n and final["words_seen"] == n + session_words(out) == rows[-1]["words_seen"]
    named = [meta(p) for p in (out / "checkpoints").iterdir() if p.name != "final"]
    assert named and all(m["milestone"] > n and m["init_words_seen"] == n for m in named)
    check_first_steps(out, n)  # the first milestone written is the first above N

    again = train(config(start, "reset", init=seed_run / "checkpoints" / "final", reset_words=True))
    assert meta(again / "checkpoints" / "final")["init_words_seen"] == 0
    assert [r["words_seen"] for r in loss_log(again)] == [r["words_seen"] for r in loss_log(seed_run)]
    check_first_steps(again, 0)


def test_milestones_at_the_first_step_with_gradient_accumulation(start):  # noqa: F811
    out = train(config(start, "accumulated", gradient_accumulation_steps=2, max_steps=5))
    check_first_steps(out, 0)


def test_resume_of_a_continued_run_keeps_its_count(start, seed_run):  # noqa: F811
    init = seed_run / "checkpoints" / "final"
    whole = train(config(start, "continued-whole", init=init))
    broken = config(start, "continued-resumed", init=init)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(broken, callbacks=[Crash(4)])
    train(broken)
    assert loss_log(broken.out) == loss_log(whole)
    for name in ("final", *(p.name for p in (whole / "checkpoints").iterdir())):
        a, b = meta(whole / "checkpoints" / name), meta(broken.out / "checkpoints" / name)
        assert (a["words_seen"], a["init_words_seen"]) == (b["words_seen"], b["init_words_seen"])


def test_unreadable_words_seen_of_the_init_is_refused_in_one_line(start, seed_run, tmp_path, capsys):  # noqa: F811
    init = shutil.copytree(seed_run / "checkpoints" / "final", tmp_path / "init")
    (init / "babymerge_training.json").write_text(json.dumps({"words_seen": "many"}))
    cfg = config(start, "refused", init=init, out=tmp_path / "out")
    yaml_file = tmp_path / "train.yaml"
    yaml_file.write_text(cfg.to_yaml())
    assert main(["train", "--config", str(yaml_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "babymerge_training.json" in err and "words_seen" in err
    assert not (tmp_path / "out" / "checkpoints").exists()
    assert main(["train", "--config", str(yaml_file), "--reset-words", "--max-steps", "1"]) == 0
