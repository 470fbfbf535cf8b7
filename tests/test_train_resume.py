"""A run killed while the Trainer writes a checkpoint resumes from the last complete one: the cut checkpoint is
skipped with a one-line notice, and the run ends exactly as an uninterrupted one (weights and loss log).
Self-contained: a generated corpus, so it runs without ../shared."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from helpers import synthetic_corpus
from safetensors.torch import load_file
from transformers import TrainerCallback

from babymerge.training import TrainConfig, train
from babymerge.training.init import init_model, save_checkpoint


class Crash(TrainerCallback):
    """Stops the run right after the Trainer checkpoint of ``step`` is written."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("simulated crash")


@pytest.fixture(scope="module")
def start(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("resume")
    save_checkpoint(init_model(tiny_tokenizer, "tiny", seed=0), tiny_tokenizer, root / "init")
    return root, synthetic_corpus(root / "corpus")


def config(start, name: str) -> TrainConfig:
    root, corpus = start
    return TrainConfig(
        mode="text",
        init=root / "init",
        text=corpus,
        out=root / name,
        max_length=32,
        batch_size=4,
        max_steps=12,
        save_steps=4,
        save_total_limit=5,
        logging_steps=2,
        milestone_unit=500,
        warmup_steps=0,
        cache_dir=root / "cache",
        progress=False,
    )


def final_state(out) -> dict[str, torch.Tensor]:
    return load_file(out / "checkpoints" / "final" / "model.safetensors")


def cut(path, keep: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


CUTS = {
    "trainer_state_truncated": lambda c: cut(c / "trainer_state.json"),
    "trainer_state_missing": lambda c: (c / "trainer_state.json").unlink(),
    "weights_truncated": lambda c: cut(c / "model.safetensors", 0.9),
    "optimizer_truncated": lambda c: cut(c / "optimizer.pt", 0.9),
}


@pytest.mark.parametrize("how", list(CUTS))
def test_checkpoint_cut_mid_write_is_skipped_on_resume(start, how, caplog):
    whole = train(config(start, "whole")) if not (start[0] / "whole").exists() else start[0] / "whole"
    killed = config(start, f"killed_{how}")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(killed, callbacks=[Crash(8)])
    checkpoint = killed.out / "trainer" / "checkpoint-8"
    CUTS[how](checkpoint)
    with caplog.at_level(logging.WARNING, logger="babymerge.training.run"):
        train(killed)
    notices = [r.getMessage() for r in caplog.records if "cut mid-write" in r.getMessage()]
    assert len(notices) == 1 and str(checkpoint) in notices[0] and "\n" not in notices[0]
    a, b = final_state(whole), final_state(killed.out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (killed.out / "loss.jsonl").read_text().splitlines()]
    assert log == [json.loads(line) for line in (whole / "loss.jsonl").read_text().splitlines()]
