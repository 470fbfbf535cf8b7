"""Plain ``lm_eval --model hf`` on a babyllava folder without ``trust_remote_code``: the start-up hook registers
the model family before lm-eval loads the checkpoint, so the documented outcomes follow (a subprocess, as a
user runs it)."""

from __future__ import annotations

import json
import subprocess

import pytest
from test_eval_cli import lm_eval_command


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def test_whole_sentence_tasks_stop_in_one_line_without_the_flag(tmp_path, layout, make_checkpoint, offline):
    args = f"pretrained={make_checkpoint(7)}"
    done = run(lm_eval_command("hf", args, "babylm_blimp_fast", layout, tmp_path / "out", "--limit", "2"), offline)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1].startswith("babymerge's whole-sentence and image tasks")
    assert not (tmp_path / "out").exists()


def test_ewok_and_entity_tracking_score_as_babyllava_without_the_flag(tmp_path, layout, make_checkpoint, offline):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from babymerge.evaluation.run import evaluate

    folder, out = make_checkpoint(7), tmp_path / "results"
    tasks = ["babylm_entity_tracking_fast", "babylm_ewok_fast"]
    command = lm_eval_command("hf", f"pretrained={folder}", ",".join(tasks), layout, out, "--limit", "4")
    done = run([*command, "--log_samples"], offline)
    assert done.returncode == 0, done.stderr[-3000:]
    ours = evaluate(
        AutoModelForCausalLM.from_pretrained(folder).eval(),
        AutoTokenizer.from_pretrained(folder),
        tasks,
        data_dir=layout,
        limit=4,
        log_samples=True,
    )
    for task in tasks:
        [file] = out.rglob(f"samples_{task}_*.jsonl")
        hf = {s["doc_id"]: [float(r[0][0]) for r in s["resps"]] for s in map(json.loads, file.read_text().splitlines())}
        babyllava = {s["doc_id"]: [r[0][0] for r in s["resps"]] for s in ours["samples"][task]}
        assert hf.keys() == babyllava.keys() and len(hf) == 4
        for doc_id, lls in hf.items():
            assert lls == pytest.approx(babyllava[doc_id], abs=1e-4), (task, doc_id)
