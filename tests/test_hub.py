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
    results = {
        "results": {
            "blimp": {"alias": "blimp", "acc,none": 0.7384, "acc_stderr,none": 0.01, "sample_len": 13400},
            "ewok": {"acc,none": 0.52},
        },
        "config": {"limit": None, "model_args": f"pretrained={out}"},
    }
    (out / "eval_results.json").write_text(json.dumps(results))
    for hidden in (".cache/huggingface/token", ".git/config", ".env"):
        (out / hidden).parent.mkdir(parents=True, exist_ok=True)
        (out / hidden).write_text(f"secret {out}\n")
    return out, text, mm


def test_dry_run_plans_model_files_and_a_hub_card(merged, capsys, tmp_path_factory):
    from huggingface_hub import ModelCard

    from babymerge.cli import main

    out, text, mm = merged
    args = ["push", str(out), "someone/babyllava-linear-0.3", "--dry-run", "--license", "apache-2.0"]
    assert main(args + ["--parent", f"{text}=someone/babyllava-text", "--parent", f"{mm}=someone/babyllava-mm"]) == 0
    printed = capsys.readouterr().out
    plan = [line.split()[2] for line in printed.splitlines() if line.startswith("would upload ")]
    for name in ("model.safetensors", "config.json", "modeling_babyllava.py", "tokenizer.json", "eval_results.json"):
        assert name in plan
    assert not [name for name in plan if any(part.startswith(".") for part in name.split("/"))]
    assert str(tmp_path_factory.getbasetemp()) not in printed  # no local absolute path in the plan or the card
    card = ModelCard(printed[printed.index("---") :])
    data = card.data
    assert data.base_model == ["someone/babyllava-text", "someone/babyllava-mm"]
    assert (data.base_model_relation, data.library_name, data.pipeline_tag) == (
        "merge",
        "transformers",
        "text-generation",
    )
    assert data.license == "apache-2.0" and {"merge", "mergekit", "babyllava", "linear"} <= set(data.tags)
    results = {(r.dataset_name, r.metric_type): r.metric_value for r in data.eval_results}
    assert results == {("blimp", "acc"): 0.7384, ("ewok", "acc"): 0.52}  # no stderr, no sample_len
    assert card.text.count("merge_method: linear") == 1  # the recipe once
    assert "`someone/babyllava-text`" in card.text and '{"weight": 0.3}' in card.text
    assert "image_features=image_features" in card.text and 'tokenizer("The cat' in card.text


def test_push_sends_only_model_files_without_local_paths(merged, monkeypatch, tmp_path_factory):
    from huggingface_hub import HfApi

    from babymerge.hub import push

    out, text, mm = merged
    sent = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: sent.setdefault("repo", repo_id))
    monkeypatch.setattr(HfApi, "create_commit", lambda self, repo_id, operations, **kw: sent.update(ops=operations))
    push(out, "someone/m", parents={str(text): "someone/t"})  # mm stays local: named by its folder name
    names = sorted(op.path_in_repo for op in sent["ops"])
    expected = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith("."))
    assert sent["repo"] == "someone/m" and names == expected
    local = str(tmp_path_factory.getbasetemp()).encode()
    for op in sent["ops"]:
        content = op.path_or_fileobj
        data = content if isinstance(content, bytes) else open(content, "rb").read()
        assert local not in data, op.path_in_repo
    readme = next(op for op in sent["ops"] if op.path_in_repo == "README.md")
    assert b"model-index" in readme.path_or_fileobj


def test_push_refuses_results_of_a_limit_run_and_unknown_parents(merged, tmp_path, capsys):
    from babymerge.cli import main

    out, _, _ = merged
    limited = tmp_path / "limited.json"
    limited.write_text(json.dumps({"results": {"blimp": {"acc,none": 1.0}}, "config": {"limit": 16}}))
    assert main(["push", str(out), "someone/m", "--dry-run", "--results", str(limited)]) == 2
    assert main(["push", str(out), "someone/m", "--dry-run", "--parent", "nothing=someone/x"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert "results of a --limit 16 run" in errors[0] and "--parent nothing=someone/x: no parent" in errors[1]


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
