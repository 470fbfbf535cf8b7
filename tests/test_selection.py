"""The paper's selection rule says when its selection task cannot tell the checkpoints apart."""

from __future__ import annotations

import logging

import pytest
from helpers import TASK, series, world_sweep

from babymerge.sweep.selection import selection_remarks, verdict


def test_verdict_names_chance_ties_and_one_item():
    assert verdict({"1M": 0.90, "2M": 0.70}, "babylm_caption_matching_fast", items=80) == []
    at_chance = verdict({"1M": 0.5125, "2M": 0.50, "3M": 0.4875}, "babylm_caption_matching_fast", items=80)
    assert len(at_chance) == 2 and "chance" in at_chance[0] and "one item" in at_chance[1]
    tie = verdict({"1M": 0.95, "2M": 0.95, "3M": 0.60}, "babylm_blimp_fast", items=200)
    assert tie == ["2 checkpoints tie for the best score (95.00)"]
    # two items apart, far from chance: the task does tell them apart
    assert verdict({"1M": 0.90, "2M": 0.875}, "babylm_caption_matching_fast", items=80) == []


def test_selection_rule_reports_a_tie(make_checkpoint, world, tmp_path, caplog):
    """Two checkpoints with the same weights score the same: the rule still picks one, and says it is a tie."""
    same = make_checkpoint(7)
    texts = series(tmp_path / "text", same, [("1M", 1_000_000), ("2M", 2_000_000)])
    mms = series(tmp_path / "mm", make_checkpoint(8), [("1M", 1_000_000)])
    sweep = world_sweep(texts, mms, world, tmp_path)
    with caplog.at_level(logging.WARNING):
        text, _ = sweep.pairs()[0]
    assert text.name == "2M"  # ties go to the later checkpoint
    remarks = sweep.selection_remarks
    assert len(remarks) == 1 and remarks[0].startswith(f"{TASK} cannot tell the 2 text checkpoints apart")
    assert "2 checkpoints tie" in remarks[0]
    assert any("selection rule" in r.message and "tie" in r.message for r in caplog.records)
    assert remarks == selection_remarks(sweep.store.records())


def test_the_selection_wait_stops_when_its_check_raises(tmp_path):
    """A rank waiting for other ranks' selection scores stops as soon as its check says one has failed."""
    from babymerge.errors import BabymergeError
    from babymerge.sweep.selection import best_checkpoint
    from babymerge.sweep.store import PointKey, ResultStore

    def a_rank_failed():
        raise BabymergeError("sweep rank 1 failed")

    keys = {PointKey.checkpoint("text", "1k", "t", "inputs"): "1k"}
    with pytest.raises(BabymergeError, match="sweep rank 1 failed"):
        best_checkpoint(ResultStore(tmp_path / "results.jsonl"), keys, "t", wait_s=5, poll_s=0, check=a_rank_failed)
