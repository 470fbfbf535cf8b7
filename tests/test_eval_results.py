"""evaluation.results: the one flattener of lm-eval results dicts, and the readers built on it."""

from __future__ import annotations

import json

import pytest

from babymerge.errors import BabymergeError
from babymerge.evaluation.results import metrics
from babymerge.evaluation.run import model_results, summary_rows
from babymerge.hub.card import read_results
from babymerge.sweep.evaluate import metric_rows

RESULTS = {
    "results": {
        "blimp": {
            "alias": "blimp",
            "acc,none": 0.75,
            "acc_stderr,none": 0.01,
            "acc,strict": 0.5,
            "acc_stderr,strict": "N/A",
            "sample_len": 100,
            "flag,none": True,
        },
        "blimp_sub": {"alias": " - sub", "acc,none": 0.25, "acc_stderr,none": float("nan")},
    },
    "groups": {"blimp": {"acc,none": 0.75, "acc_stderr,none": 0.01}},
    "config": {"limit": None},
    "versions": {"blimp": 1},
    "lm_eval_version": "0.4.13",
}


def test_metrics_keep_numbers_of_metric_filter_keys_only():
    found = [(m.task, m.key, m.value, m.stderr) for m in metrics(RESULTS)]
    assert found == [
        ("blimp", "acc,none", 0.75, 0.01),
        ("blimp", "acc,strict", 0.5, None),  # a stderr that is not a number is no stderr
        ("blimp_sub", "acc,none", 0.25, None),  # nor is a NaN one
    ]


def test_every_reader_sees_the_same_metrics(tmp_path):
    assert summary_rows(RESULTS) == [
        {"task": "blimp", "metric": "acc", "value": 0.75},
        {"task": "blimp", "metric": "acc", "value": 0.5},
        {"task": "blimp_sub", "metric": "acc", "value": 0.25},
    ]
    assert model_results(RESULTS)["results"] == {
        "blimp": {"acc,none": 0.75, "acc,strict": 0.5},
        "blimp_sub": {"acc,none": 0.25},
    }
    assert [(r["task"], r["metric"], r["stderr"]) for r in metric_rows(RESULTS, "blimp")] == [
        ("blimp", "acc", 0.01),  # a group's table in "groups" replaces its row in "results"
        ("blimp/blimp_sub", "acc", None),
    ]
    path = tmp_path / "eval_results.json"
    path.write_text(json.dumps(model_results(RESULTS)))
    assert read_results(path) == {"blimp": {"acc": 0.5}, "blimp_sub": {"acc": 0.25}}
    path.write_text(json.dumps({**RESULTS, "config": {"limit": 10}}))
    with pytest.raises(BabymergeError, match="--limit 10"):
        read_results(path)
