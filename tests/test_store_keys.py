"""The results store reads each line once per store object (issue 22: re-reading the whole store on every append
made a sweep's store time grow with the square of its results), and still sees every other writer's lines, a line
a killed writer left unfinished, and a file rewritten under it."""

from __future__ import annotations

import json

from helpers import raw_keys

from babymerge.sweep import store as store_module
from babymerge.sweep.items import FIELD, encode
from babymerge.sweep.store import PointKey, ResultStore, record_key


def result(i: int, task: str = "babylm_blimp_fast") -> list[dict]:
    key = PointKey.make("text=a+multimodal=b", "linear", i / 100, task, "x").fields()
    return [
        {**key, "metric": "acc", "value": 0.5, FIELD: encode([1.0, 0.0])},
        {**key, "metric": "tie_fraction", "value": 0},
    ]


def test_appends_parse_each_stored_line_once(tmp_path, monkeypatch):
    parsed = []
    loads = json.loads
    monkeypatch.setattr(store_module.json, "loads", lambda text: parsed.append(1) or loads(text))
    store = ResultStore(tmp_path / "results.jsonl")
    for i in range(40):
        store.append_scored(result(i))
    lines = len(store.path.read_text().splitlines()) + len(store.items_store.path.read_text().splitlines())
    assert (lines, store.items_store.path.name) == (120, "results.items.jsonl")
    assert len(parsed) <= lines  # re-reading the files on every append parses about 40 times as many
    assert store.keys() == set(raw_keys(store.path)) and len(store.keys()) == 80


def test_keys_see_other_writers_an_unfinished_line_and_a_rewritten_file(tmp_path):
    path = tmp_path / "results.jsonl"
    first, second = ResultStore(path), ResultStore(path)
    first.append(result(0))
    assert second.append(result(0) + result(1)) == 2  # the other writer's lines are seen: only new keys
    assert first.append(result(1)) == 0 and len(first.keys()) == 4

    with open(path, "a") as handle:  # a writer killed mid-line
        handle.write(json.dumps(result(2)[0])[:30])
    assert len(first.keys()) == 4
    assert first.append(result(2)) == 2 and len(second.keys()) == 6  # the fragment closed, skipped, not counted
    assert len(path.read_text().splitlines()) == 7 and len(ResultStore(path).records()) == 6

    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([lines[0].replace('"acc"', '"acc_tie_neutral"')] + lines[1:]))  # rewritten in place
    assert first.keys() == {record_key(r) for r in ResultStore(path).records()}  # a full read, by a new object
    assert ("acc_tie_neutral" in {metric for _, metric in first.keys()}) and len(first.keys()) == 6
    path.unlink()
    assert first.keys() == set() and first.append(result(3)) == 2
