"""Two processes under torchrun (CPU, gloo) train like one process with the same global batch: the words seen
are summed over processes and the milestones and loss log are written once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import synthetic_corpus

from babymerge.training.init import init_model, save_checkpoint

BIN = Path(sys.executable).parent  # the running environment's commands, whether or not it is activated


def test_torchrun_two_processes_count_words_like_one(tmp_path, tiny_tokenizer, offline):
    torchrun, babymerge = BIN / "torchrun", BIN / "babymerge"
    assert torchrun.is_file() and babymerge.is_file(), f"torchrun and babymerge belong beside {sys.executable}"
    init = tmp_path / "init"
    save_checkpoint(init_model(tiny_tokenizer, "tiny", seed=0), tiny_tokenizer, init)
    corpus = synthetic_corpus(tmp_path / "corpus", lines=1200)
    common = ["train", "--mode", "text", "--init", str(init), "--text", str(corpus)]
    common += ["--max-length", "48", "--max-steps", "6", "--logging-steps", "2"]
    common += ["--milestone-unit", "500", "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    env = offline | {"OMP_NUM_THREADS": "1"}
    cli = [str(babymerge)]
    two = [str(torchrun), "--nproc-per-node", "2", *cli, *common, "--batch-size", "4", "--out", str(tmp_path / "two")]
    subprocess.run(two, check=True, capture_output=True, env=env, timeout=300)
    one = [*cli, *common, "--batch-size", "8", "--out", str(tmp_path / "one")]
    subprocess.run(one, check=True, capture_output=True, env=env, timeout=300)

    logs = {}
    for run in ("one", "two"):
        logs[run] = [json.loads(line) for line in (tmp_path / run / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs["two"]] == [2, 4, 6]  # written once, by the main process
    assert [r["words_seen"] for r in logs["two"]] == [r["words_seen"] for r in logs["one"]]
    for a, b in zip(logs["one"], logs["two"], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-3)
    names = sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "one" / "checkpoints").iterdir()) and "final" in names
