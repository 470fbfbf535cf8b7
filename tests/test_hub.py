"""``babymerge push``: the card (parents, method, parameters, recipe, model-index), --dry-run, offline failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def merged(make_checkpoint, tmp_path_factory):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    text, mm = make_checkpoint(51), make_checkpoint(52)
    recipe = {
        "merge_method": "linear",
        "parameters": {"normalize": False},
        "models": [
            {"model": str(text), "parameters": {"weight": 0.3}},
            {"model": str(mm), "parameters": {"weight": 0.7}},
        ],
    }
    out = tmp_path_factory.mktemp("merged") / "babyllava-linear-0.3"
    run_merge(MergeConfiguration.model_validate(recipe), str(out), options=MergeOptions(quiet=True))
    results = {"results": {"blimp": {"acc,none": 0.7384, "acc_stderr,none": 0.01}, "ewok": {"acc,none": 0.52}}}
    (out / "eval_results.json").write_text(json.dumps(results))
    return out, text, mm


def test_dry_run_lists_files_and_builds_the_card(merged, capsys):
    from huggingface_hub import ModelCard

    from babymerge.cli import main

    out, text, mm = merged
    assert main(["push", str(out), "someone/babyllava-linear-0.3", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    for name in ("model.safetensors", "config.json", "modeling_babyllava.py", "tokenizer.json", "eval_results.json"):
        assert f"would upload {name} (" in printed
    card = ModelCard(printed[printed.index("---") :])
    assert str(text) in card.text and str(mm) in card.text
    assert "`linear`" in card.text and '{"weight": 0.3}' in card.text and "merge_method: linear" in card.text
    results = {(r.dataset_name, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results == {("blimp", "acc"): 0.7384, ("ewok", "acc"): 0.52}
    assert "merge" in card.data.tags


def test_push_sends_one_commit_with_every_file(merged, monkeypatch):
    from huggingface_hub import HfApi

    from babymerge.hub import push

    out, _, _ = merged
    sent = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: sent.setdefault("repo", repo_id))
    monkeypatch.setattr(HfApi, "create_commit", lambda self, repo_id, operations, **kw: sent.update(ops=operations))
    push(out, "someone/m")
    names = sorted(op.path_in_repo for op in sent["ops"])
    expected = sorted(p.name for p in out.iterdir() if p.is_file())
    assert sent["repo"] == "someone/m" and names == expected
    readme = next(op for op in sent["ops"] if op.path_in_repo == "README.md")
    assert b"model-index" in readme.path_or_fileobj


def test_push_without_network_fails_clearly(merged):
    out, _, _ = merged
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env |= {
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_TOKEN": "hf_test_token_not_real",
        "BABYMERGE_NO_MERGEKIT_HOOK": "1",
    }
    code = "import sys; from babymerge.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run(
        [sys.executable, "-c", code, "push", str(out), "someone/m"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot reach the Hugging Face Hub" in lines[0] and "someone/m" in lines[0]


def test_push_of_a_folder_without_recipe(tmp_path):
    from babymerge.cli import main

    assert main(["push", str(tmp_path), "someone/m", "--dry-run"]) == 2
