"""The synthetic world is deterministic and grounded; ``babymerge demo --quick`` runs the whole job."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from babymerge.demo.world import COLOURS, QUICK, generate_world
from babymerge.errors import BabymergeError
from babymerge.sweep.selection import at_chance
from babymerge.sweep.store import ResultStore


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_world_is_deterministic_and_seeded(tmp_path):
    a = files(generate_world(tmp_path / "a", QUICK))
    assert a == files(generate_world(tmp_path / "b", QUICK))
    assert a != files(generate_world(tmp_path / "c", QUICK.model_copy(update={"seed": 1})))


def test_world_layout_and_grounding(tmp_path):
    world = generate_world(tmp_path / "w", QUICK)
    with open(world / "captions.txt", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == QUICK.scenes
    for row in rows[:20]:
        image = Image.open(world / "images" / row["image"]).convert("RGB")
        counts = {colour: n for n, colour in image.getcolors(1 << 16)}
        named = [w for w in row["caption"].lower().rstrip(".").split() if w in COLOURS]
        assert len(named) == 1 and COLOURS[named[0]] in counts, row
        assert not any(COLOURS[c] in counts for c in set(COLOURS) - set(named)), row
        # one large flat region of the named colour: what a random backbone's mean-pooled features keep
        assert counts[COLOURS[named[0]]] > 0.08 * image.width * image.height, row

    blimp = sorted((world / "evaluation_data" / "fast_eval" / "blimp_fast").glob("*.jsonl"))
    assert len(blimp) == 5
    for file in blimp:
        pairs = [json.loads(line) for line in file.read_text().splitlines()]
        assert len(pairs) == QUICK.pairs_per_phenomenon
        for pair in pairs:
            assert pair["UID"] == file.stem and pair["sentence_good"] != pair["sentence_bad"]
            assert pair["sentence_good"][0].isupper() and pair["sentence_good"].endswith(".")

    corpus = (world / "text" / "world.train").read_text().splitlines()
    assert len(corpus) == QUICK.text_sentences
    # the corpus teaches the agreement the pairs test: "these" only with plural nouns
    for line in corpus:
        words = line.lower().split()
        if "these" in words:
            assert words[words.index("these") + 1].endswith("s")

    rows = [
        json.loads(line)
        for line in (world / "evaluation_data" / "full_eval" / "winoground_filtered" / "winoground.jsonl")
        .read_text()
        .splitlines()
    ]
    by_example: dict[int, list[dict]] = {}
    for row in rows:
        by_example.setdefault(row["image_idx"], []).append(row)
        assert (world / "images" / f"{row['image_idx']}_{row['image_key']}.png").is_file()
    for pair in by_example.values():
        zero, one = sorted(pair, key=lambda r: r["image_key"])
        assert (zero["caption_0"], zero["caption_1"]) == (one["caption_1"], one["caption_0"])
        assert zero["caption_0"] != zero["caption_1"]
        assert sorted(zero["caption_0"].lower().split()) == sorted(zero["caption_1"].lower().split())


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path, cli):
    out = tmp_path / "demo"
    args = ["demo", "--quick", "--out", out, "--no-progress"]
    result = cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RANDOMLY INITIALISED" in result.stdout
    assert "synthetic world" in result.stdout
    table = (out / "sweep" / "sweep_table.md").read_text()
    assert "Grammar pairs (world, BLiMP format)" in table and "Caption matching (world)" in table
    # images matter: the multimodal model's final checkpoint matches captions to held-out scenes above chance
    records = ResultStore(out / "sweep" / "results.jsonl").records()
    final = [
        r
        for r in records
        if r["pair"] == "text=final+multimodal=final"
        and r["method"] == "linear"
        and r["alpha"] == 0.0
        and r["task"] == "babylm_caption_matching_fast"
        and r["metric"] == "acc"
    ]
    assert len(final) == 1 and final[0]["value"] >= 0.75 and not at_chance(final[0]["value"], 0.5, final[0]["items"])
    assert "Text-only vs multimodal at equal words seen" in result.stdout
    assert (out / "sweep" / "equal_words.csv").is_file() and (out / "sweep" / "plots" / "equal_words.png").is_file()
    plots = {p.name for p in (out / "sweep" / "plots").glob("*.png")}
    assert "babylm_blimp_fast_vs_alpha.png" in plots and "babylm_blimp_fast_vs_words.png" in plots
    # both runs start from one initialisation and wrote milestone checkpoints along training
    for run in ("text_run", "multimodal_run"):
        meta = json.loads((out / run / "checkpoints" / "final" / "babymerge_training.json").read_text())
        assert Path(meta["init"]) == (out / "init").resolve()
        assert len(list((out / run / "checkpoints").iterdir())) >= 3
    # a second run resumes: nothing is retrained or re-scored
    before = (out / "sweep" / "results.jsonl").read_text()
    again = cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "sweep" / "results.jsonl").read_text() == before
    assert "training the" not in again.stdout
    # on two processes (both runs side by side, sweep points shared): the same models and the same scores
    two = tmp_path / "two"
    side_by_side = cli("demo", "--quick", "--out", two, "--no-progress", "--workers", "2")
    assert side_by_side.returncode == 0, side_by_side.stderr[-3000:]
    assert "side by side" in side_by_side.stdout
    assert scores(two) == scores(out)
    assert {r["rank"] for r in ResultStore(two / "sweep" / "results.jsonl").records()} == {0, 1}
    for name in ("sweep_table.md", "equal_words.md"):
        assert (two / "sweep" / name).read_text() == (out / "sweep" / name).read_text()


def scores(out: Path) -> dict:
    records = ResultStore(out / "sweep" / "results.jsonl").records()
    return {(r["pair"], r["method"], r["alpha"], r["task"], r["metric"]): r["value"] for r in records}


def test_a_waiting_sweep_rank_stops_when_another_rank_or_its_parent_ends(tmp_path):
    from types import SimpleNamespace

    from babymerge.demo.workers import wait_for_grid
    from babymerge.errors import BabymergeError
    from babymerge.sweep.store import PointKey, ResultStore, result_records

    store = ResultStore(tmp_path / "results.jsonl")
    key = PointKey.make("text=a+multimodal=b", "linear", 0.5, "t", "inputs")
    sweep = SimpleNamespace(grid_keys=lambda: {key}, store=store)
    wait = {"poll_s": 0, "timeout_s": 1}  # without the checks, the wait times out instead: another message

    with pytest.raises(BabymergeError, match=r"sweep rank 1 failed in its own process \(exit code 1\)"):
        wait_for_grid(sweep, {"sweep rank 1": SimpleNamespace(exitcode=1)}, **wait)
    with pytest.raises(BabymergeError, match="the other sweep ranks ended without scoring their points"):
        wait_for_grid(sweep, {"sweep rank 1": SimpleNamespace(exitcode=0)}, **wait)
    with pytest.raises(BabymergeError, match="the demo process that started this sweep rank has ended"):
        wait_for_grid(sweep, {}, parent=-1, **wait)
    store.append(result_records(key, [{"task": "t", "metric": "acc", "value": 1.0}], {}, 0.0, None))
    wait_for_grid(sweep, {"sweep rank 1": SimpleNamespace(exitcode=None)}, **wait)


def test_a_failed_side_by_side_run_is_named(tmp_path):
    from babymerge.demo.workers import train_side_by_side
    from babymerge.errors import BabymergeError
    from babymerge.training import TrainConfig

    text = tmp_path / "text.train"
    text.write_text("a few words\n")
    configs = [TrainConfig(mode="text", init=tmp_path / "missing", text=text, out=tmp_path / m) for m in "ab"]
    with pytest.raises(BabymergeError, match=r"training the text model failed in its own process \(exit code 1\)"):
        train_side_by_side(configs, threads=1)


def test_real_data_needs_all_three_flags(tmp_path, capsys):
    from babymerge.cli import main

    code = main(["demo", "--out", str(tmp_path / "d"), "--train-text", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "--images-captions" in err[0] and "--data-dir" in err[0] and "--train-text" not in err[0].split("missing")[1]
    assert not (tmp_path / "d").exists()


def test_config_file_errors_name_the_file_and_field(tmp_path):
    from babymerge.demo.run import load_config

    config = tmp_path / "study.yaml"
    config.write_text("out: runs\nthreads: 0\n")
    with pytest.raises(BabymergeError, match=r"study.yaml: field threads: .*greater than or equal to 1"):
        load_config(config)
    config.write_text("out: runs\nalpha: [0.5]\n")
    with pytest.raises(BabymergeError, match=r"study.yaml: field alpha: Extra inputs"):
        load_config(config)
    config.write_text("out: runs\nepochs: 2\n")
    loaded = load_config(config, epochs=3, seed=None)
    assert loaded.out == tmp_path / "runs" and loaded.epochs == 3 and loaded.threads == 1
