"""``--limit N`` samples every paradigm: the dataset builders list documents round-robin across paradigms (BLiMP
UIDs, EWoK domains, Entity Tracking's split x numops), lm-eval takes the first N, and full-set scores (per-paradigm
means) do not change; every table, plot title, card and results file made with a limit says so."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest
from helpers import WORDS

from babymerge.evaluation import docs

PARADIGMS = ["adjunct_island", "anaphor_agreement", "determiner_noun", "irregular_past", "wh_island"]


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6))).capitalize() + "."


def write(folder, name: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """BLiMP-format pairs of five paradigms (one file each, uneven sizes), EWoK items of three domains, Entity
    Tracking items of two files x three numops; every file sorted by paradigm, as BabyLM ships them."""
    rng = random.Random(11)
    root = tmp_path_factory.mktemp("evaluation_data")
    for i, uid in enumerate(PARADIGMS):
        rows = [{"sentence_good": sentence(rng), "sentence_bad": sentence(rng), "UID": uid} for _ in range(3 + i)]
        write(root / "fast_eval" / "blimp_fast", uid, rows)
    ewok = [
        {"Domain": domain, "Context1": sentence(rng), "Target1": sentence(rng), "Target2": sentence(rng)}
        for domain in ("physics", "social", "spatial")
        for _ in range(4)
    ]
    write(root / "fast_eval" / "ewok_fast", "items", ewok)
    for split in ("regular", "ambiref"):
        rows = [
            {"input_prefix": sentence(rng), "options": [f" {w}" for w in rng.sample(WORDS, 3)], "numops": n}
            for n in range(3)
            for _ in range(3)
        ]
        write(root / "fast_eval" / "entity_tracking_fast", split, rows)
    return root


def paradigms(task: str, docs_: list[dict]) -> set:
    if task == "babylm_entity_tracking_fast":
        return {(d["split"], d["numops"]) for d in docs_}
    return {d["uid"] for d in docs_}


@pytest.mark.parametrize(
    ("task", "builder", "count"),
    [
        ("babylm_blimp_fast", lambda root: docs.minimal_pairs("blimp_fast", str(root)), 5),
        ("babylm_ewok_fast", lambda root: docs.ewok("ewok_fast", str(root)), 3),
        ("babylm_entity_tracking_fast", lambda root: docs.entity_tracking("entity_tracking_fast", str(root)), 6),
    ],
)
def test_first_k_documents_cover_min_k_paradigms(data, task, builder, count):
    rows = builder(data)["test"].to_list()
    for k in range(1, len(rows) + 1):
        assert len(paradigms(task, rows[:k])) == min(k, count), (task, k)


@pytest.fixture(scope="module")
def model(tiny_tokenizer):
    from babymerge.training.init import init_model

    return init_model(tiny_tokenizer, "tiny", seed=3).eval()


def test_lm_eval_limit_scores_every_paradigm(data, model, tiny_tokenizer):
    """lm-eval's own ``limit`` (the first N documents, as ``lm_eval --limit``) on BLiMP fast."""
    from babymerge.evaluation import evaluate

    for k in (3, 5, 8):
        out = evaluate(model, tiny_tokenizer, ["babylm_blimp_fast"], data_dir=data, limit=k, log_samples=True)
        scored = [s["doc"] for s in out["samples"]["babylm_blimp_fast"]]
        assert len(scored) == k and paradigms("babylm_blimp_fast", scored) == set(PARADIGMS[: min(k, 5)])


def test_full_set_scores_do_not_depend_on_the_order(data, model, tiny_tokenizer, monkeypatch):
    from babymerge.evaluation import evaluate

    tasks = ["babylm_blimp_fast", "babylm_ewok_fast"]

    def scores() -> dict[str, float]:
        out = evaluate(model, tiny_tokenizer, tasks, data_dir=data, batch_size=4)
        return {task: out["results"][task]["acc,none"] for task in tasks}

    interleaved = scores()
    file_order = docs.minimal_pairs("blimp_fast", str(data))["test"]["uid"]
    monkeypatch.setattr(docs, "round_robin", lambda items, paradigm: items)
    assert docs.minimal_pairs("blimp_fast", str(data))["test"]["uid"] != file_order  # the order did change
    assert scores() == interleaved
    assert 0.0 < min(interleaved.values()) and max(interleaved.values()) < 1.0  # not a trivial score


def limited_records(limit: int | None) -> list[dict]:
    records = []
    for words in (1_000_000, 2_000_000):
        name = f"{words // 1_000_000}M"
        for alpha in (0.0, 1.0):
            records.append(
                {"pair": f"text={name}+multimodal={name}", "method": "linear", "alpha": alpha}
                | {"task": "babylm_blimp_fast", "metric": "acc", "value": 0.6 + alpha / 10, "limit": limit}
                | {"text": name, "multimodal": name, "text_words": words, "multimodal_words": words}
            )
    return records


def test_tables_plots_and_card_say_the_limit(tmp_path, monkeypatch):
    from babymerge.sweep import report
    from babymerge.sweep.checkpoints import Checkpoint
    from babymerge.sweep.merge import MergeSpec
    from babymerge.sweep.stage import card_scores

    label = "BLiMP (fast), limit 100 per task"
    titles: list[str] = []
    original = report.save_figure

    def spy(figure, path):
        titles.append(figure._suptitle.get_text() if figure._suptitle else "")
        titles.extend(axis.get_title() for axis in figure.axes)
        return original(figure, path)

    monkeypatch.setattr(report, "save_figure", spy)
    report.write_report(limited_records(100), tmp_path / "limited")
    assert label in (tmp_path / "limited" / "sweep_table.md").read_text()
    assert label in (tmp_path / "limited" / "equal_words.md").read_text()
    assert all(line.endswith(",100") for line in (tmp_path / "limited" / "equal_words.csv").read_text().split()[1:])
    header, first = (tmp_path / "limited" / "sweep_table.csv").read_text().splitlines()[:2]
    assert dict(zip(header.split(","), first.split(","), strict=True))["limit"] == "100"
    assert sum(title.startswith(label) for title in titles) == 3  # vs alpha, vs words, equal words

    titles.clear()
    report.write_report(limited_records(None), tmp_path / "full")
    assert "limit" not in (tmp_path / "full" / "sweep_table.md").read_text()
    assert not any("limit" in title for title in titles)

    pair = (Checkpoint("1M", tmp_path, 1_000_000), Checkpoint("1M", tmp_path, 1_000_000))
    sweep = SimpleNamespace(config=SimpleNamespace(limit=100), random_backbone=False)
    card = card_scores(sweep, limited_records(100), pair, MergeSpec(method="linear", alpha=1.0))
    assert "limit 100 per task" in card
    sweep.config.limit = None
    assert "limit" not in card_scores(sweep, limited_records(None), pair, MergeSpec(method="linear", alpha=1.0))


def test_eval_summary_table_says_the_limit():
    from babymerge.evaluation import summary_table

    results = {"results": {"babylm_blimp_fast": {"alias": "babylm_blimp_fast", "acc,none": 0.5}}}
    assert "limit" not in summary_table(results | {"config": {"limit": None}})
    assert "| task | metric | score (limit 100 per task) |" in summary_table(results | {"config": {"limit": 100.0}})
