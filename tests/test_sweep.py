"""The sweep: its scores equal an independent merge-and-score, the paper's selection rule and checkpoint-by-
checkpoint pairing, the table and plots, and errors. Merge equality, the store and resuming: test_sweep_*.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import torch
from helpers import TASK, series, sweep_cmd, world_sweep

from babymerge.sweep.merge import BASE, load_state


def babylm_accuracy(model, tokenizer, folder: Path, margin: float = 1e-3) -> tuple[float, float]:
    """BLiMP by hand: sum of log-probs of the tokens from the sentence's first character on (after ``<s>
    <image>``), the better of the pair wins, accuracy per file, macro over files.

    Returns (low, high): pairs whose two scores lie within ``margin`` (near-ties of an untrained model, which
    batching noise may flip) count as wrong for ``low`` and right for ``high``.
    """
    low, high = [], []
    for file in sorted(folder.glob("*.jsonl")):
        sure, unsure, n = 0, 0, 0
        for line in file.read_text().splitlines():
            row = json.loads(line)
            scores = []
            for sentence in (row["sentence_good"], row["sentence_bad"]):
                enc = tokenizer(sentence, return_offsets_mapping=True, return_tensors="pt")
                ids = enc["input_ids"]
                with torch.no_grad():
                    logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), -1)
                first = next(i for i, (a, b) in enumerate(enc["offset_mapping"][0].tolist()) if b > a)
                scores.append(sum(logprobs[i - 1, ids[0, i]].item() for i in range(first, ids.shape[1])))
            n += 1
            if abs(scores[0] - scores[1]) < margin:
                unsure += 1
            elif scores[0] > scores[1]:
                sure += 1
        low.append(sure / n)
        high.append((sure + unsure) / n)
    return sum(low) / len(low), sum(high) / len(high)


def test_scores_selection_and_alignment(make_checkpoint, models, world, tmp_path):
    from transformers import AutoTokenizer

    from babymerge import BabyLlavaForConditionalGeneration

    texts = series(tmp_path / "text", make_checkpoint(3), [("1M", 1_000_000)])
    series(texts, make_checkpoint(4), [("2M", 2_000_000)])
    mms = series(tmp_path / "mm", make_checkpoint(5), [("1M", 1_000_000)])
    series(mms, make_checkpoint(6), [("2M", 2_000_000)])
    sweep = world_sweep(texts, mms, world, tmp_path, pairing=["best", "aligned"], select_multimodal_by=TASK)
    records = sweep.run()
    blimp = world / "evaluation_data" / "fast_eval" / "blimp_fast"
    tokenizer = AutoTokenizer.from_pretrained(texts / "checkpoints" / "1M")

    def by_hand(state: dict) -> tuple[float, float]:
        model = BabyLlavaForConditionalGeneration.from_pretrained(texts / "checkpoints" / "1M").eval()
        model.load_state_dict(state)
        return babylm_accuracy(model, tokenizer, blimp)

    stored = {}
    for role, root in (("text", texts), ("multimodal", mms)):
        for name in ("1M", "2M"):
            low, high = by_hand(load_state(root / "checkpoints" / name))
            rows = [r for r in records if r["pair"] == f"{role}={name}" and r["metric"] == "acc"]
            assert len(rows) == 1 and low - 1e-9 <= rows[0]["value"] <= high + 1e-9
            stored[role, name] = rows[0]["value"]
    # the rule: highest score, ties to the later checkpoint
    best_text = max(["2M", "1M"], key=lambda n: stored["text", n])
    best_mm = max(["2M", "1M"], key=lambda n: stored["multimodal", n])
    pairs = {r["pair"] for r in records if r.get("alpha") is not None}
    assert pairs == {f"text={best_text}+multimodal={best_mm}", "text=1M+multimodal=1M", "text=2M+multimodal=2M"}

    a, b = load_state(texts / "checkpoints" / "2M"), load_state(mms / "checkpoints" / "2M")
    low, high = by_hand({k: 0.5 * a[k] + 0.5 * b[k] for k in a})
    point = [r for r in records if r["pair"] == "text=2M+multimodal=2M" and r["metric"] == "acc"]
    assert low - 1e-9 <= point[0]["value"] <= high + 1e-9
    assert point[0]["text_words"] == 2_000_000


def test_report_table_and_plots(tmp_path):
    from PIL import Image

    from babymerge.sweep.report import write_report

    records = []
    for words in (1_000_000, 2_000_000, 4_000_000):
        for alpha in (0.0, 0.5, 1.0):
            for task, value in (("blimp", 0.6 + alpha / 10 + words / 1e8), ("wino", 0.5 - alpha / 10)):
                name = f"{words // 1_000_000}M"
                records.append(
                    {"pair": f"text={name}+multimodal={name}", "method": "linear", "alpha": alpha, "task": task}
                    | {"metric": "acc", "value": value, "text": name, "multimodal": name, "text_words": words}
                    | {"multimodal_words": words}
                )
    files = write_report(records, tmp_path)
    names = sorted(p.name for p in files)
    assert names == sorted(
        ["sweep_table.md", "sweep_table.csv", "comparisons.md", "comparisons.csv"]
        + ["equal_words.md", "equal_words.csv", "equal_words.png"]
        + [f"{t}_vs_{x}.png" for t in ("blimp", "wino") for x in ("alpha", "words")]
    )
    for png in (p for p in files if p.suffix == ".png"):
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size[0] > 300
    table = (tmp_path / "sweep_table.md").read_text()
    assert "| text=2M+multimodal=2M | linear | 0.5 | 67.00 | 45.00 |" in table
    assert (tmp_path / "sweep_table.csv").read_text().count("\n") == 1 + 9


def test_unknown_method_is_one_line_error(models, world, tmp_path, offline):
    result = subprocess.run(
        sweep_cmd(models, world, tmp_path / "s", "--methods", "lerp"), env=offline, capture_output=True, text=True
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "'lerp'" in last and "linear" in last


def test_scorer_indexes_only_babymerge_tasks(models, world, monkeypatch):
    """The sweep's scorer on babymerge's tasks skips indexing lm-eval's ~10k built-in task configs."""
    import lm_eval.tasks
    from transformers import AutoTokenizer

    from babymerge import BabyLlavaForConditionalGeneration
    from babymerge.evaluation.plugin import babymerge_task_names
    from babymerge.sweep.evaluate import babyllava_scorer

    managers = []
    original = lm_eval.tasks.get_task_dict

    def spy(tasks, manager=None):
        managers.append(manager)
        return original(tasks, manager)

    monkeypatch.setattr(lm_eval.tasks, "get_task_dict", spy)
    model = BabyLlavaForConditionalGeneration.from_pretrained(models[BASE])
    babyllava_scorer(model, AutoTokenizer.from_pretrained(models[BASE]), [TASK], data_dir=world / "evaluation_data")
    assert managers and all(set(m.all_tasks) == babymerge_task_names() for m in managers)
