"""The synthetic world is deterministic and grounded; ``babymerge demo --quick`` runs the whole job."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from babymerge.demo.world import COLOURS, QUICK, generate_world


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
        present = {colour for _, colour in image.getcolors(1 << 16)}
        named = [w for w in row["caption"].lower().rstrip(".").split() if w in COLOURS]
        assert len(named) == 2 and all(COLOURS[c] in present for c in named), row
        absent = set(COLOURS) - set(named)
        assert not any(COLOURS[c] in present for c in absent), row

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
def test_quick_demo_end_to_end(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = tmp_path / "demo"
    cmd = [sys.executable, "-c", "import sys; from babymerge.cli import main; sys.exit(main())"]
    cmd += ["demo", "--quick", "--out", str(out), "--no-progress"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RANDOMLY INITIALISED" in result.stdout
    assert "synthetic world" in result.stdout
    table = (out / "sweep" / "sweep_table.md").read_text()
    assert "babylm_blimp_fast" in table and "babylm_caption_matching_fast" in table
    plots = {p.name for p in (out / "sweep" / "plots").glob("*.png")}
    assert "babylm_blimp_fast_vs_alpha.png" in plots and "babylm_blimp_fast_vs_words.png" in plots
    # both runs start from one initialisation and wrote milestone checkpoints along training
    for run in ("text_run", "multimodal_run"):
        meta = json.loads((out / run / "checkpoints" / "final" / "babymerge_training.json").read_text())
        assert Path(meta["init"]) == (out / "init").resolve()
        assert len(list((out / run / "checkpoints").iterdir())) >= 3
    # a second run resumes: nothing is retrained or re-scored
    before = (out / "sweep" / "results.jsonl").read_text()
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "sweep" / "results.jsonl").read_text() == before
    assert "training the" not in again.stdout
