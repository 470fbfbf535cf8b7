"""The equal-word comparison is built from the sweep's store and equals each checkpoint scored on its own."""

from __future__ import annotations

import csv

from helpers import TASK, series, world_sweep

from babymerge.sweep.equal_words import equal_word_rows, write_equal_words
from babymerge.sweep.store import ResultStore


def score_alone(folder, world) -> float:
    """The checkpoint loaded from its own folder and scored through lm-eval (no merge, no store)."""
    from transformers import AutoTokenizer

    from babymerge import BabyLlavaForConditionalGeneration
    from babymerge.sweep.evaluate import babyllava_scorer

    model = BabyLlavaForConditionalGeneration.from_pretrained(folder).eval()
    scorer = babyllava_scorer(model, AutoTokenizer.from_pretrained(folder), [TASK], data_dir=world / "evaluation_data")
    return next(r["value"] for r in scorer.score(TASK) if r["task"] == TASK and r["metric"] == "acc")


def test_equal_word_table_matches_each_checkpoint_scored_alone(make_checkpoint, world, tmp_path):
    texts = series(tmp_path / "text", make_checkpoint(3), [("1M", 1_000_000)])
    series(texts, make_checkpoint(4), [("2M", 2_000_000), ("final", 2_400_000)])
    # milestones are crossed inside a batch: words seen differ a little; the final checkpoints differ a lot
    mms = series(tmp_path / "mm", make_checkpoint(5), [("1M", 1_003_000)])
    series(mms, make_checkpoint(6), [("2M", 2_011_000), ("final", 4_000_000)])
    store = tmp_path / "sweep" / "results.jsonl"
    world_sweep(texts, mms, world, tmp_path, alphas=[0.0, 0.5, 1.0], pairing=["aligned"], store=store).run()
    records = ResultStore(store).records(with_items=True)

    tasks, rows = equal_word_rows(records)
    assert tasks == [TASK]
    assert [(r["text"], r["multimodal"]) for r in rows] == [("1M", "1M"), ("2M", "2M")]  # not final: unequal words
    for row in rows:
        text_alone = 100 * score_alone(texts / "checkpoints" / row["text"], world)
        multimodal_alone = 100 * score_alone(mms / "checkpoints" / row["multimodal"], world)
        assert abs(row["text_only"] - text_alone) < 1e-9 and abs(row["multimodal_score"] - multimodal_alone) < 1e-9
        assert abs(row["difference"] - (text_alone - multimodal_alone)) < 1e-9
    assert any(r["text_only"] != r["multimodal_score"] for r in rows)  # a swap of the two sides would show

    files = write_equal_words(records, tmp_path / "report")
    assert [p.name for p in files] == ["equal_words.md", "equal_words.csv", "equal_words.png"]
    with open(files[1], newline="") as handle:
        back = list(csv.DictReader(handle))
    assert [(r["text"], float(r["text_only"]), float(r["multimodal_score"])) for r in back] == [
        (r["text"], r["text_only"], r["multimodal_score"]) for r in rows
    ]
    table = files[0].read_text()
    for row in rows:  # each score with its 95% interval, then the paired difference and its verdict
        text_only = f"{row['text_only']:.2f} [{row['text_only_low']:.2f}, {row['text_only_high']:.2f}]"
        multimodal = f"{row['multimodal_score']:.2f} [{row['multimodal_low']:.2f}, {row['multimodal_high']:.2f}]"
        assert f"{text_only} / {multimodal}; {row['difference']:+.2f} [" in table
        assert row["verdict"] in ("ahead", "behind", "not distinguishable")
    assert [r["verdict"] for r in back] == [r["verdict"] for r in rows]


def test_words_axis_labels_the_checkpoints_word_counts():
    """Milestones between two powers of ten (0.5M-2.5M) get their own tick labels, not just "1M"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from babymerge.sweep.report import words_axis

    figure, axis = plt.subplots()
    words = [500_000, 1_000_000, 1_500_000, 2_000_000, 2_500_000, 2_520_000]
    axis.plot(words, range(len(words)))
    words_axis(axis, words)
    figure.canvas.draw()
    labels = [t.get_text() for t in axis.get_xticklabels() if t.get_text()]
    plt.close(figure)
    assert labels == ["500k", "1M", "1.5M", "2M", "2.5M"]  # 2.52M is too close to 2.5M to get its own label
