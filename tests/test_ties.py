"""Ties counted and kept neutral, on data the test generates (no shared data needed).

A model whose next-token distribution ignores the input (an all-zero LM head) gives every scored token
log(1/V), so options tie exactly when they have as many scored tokens, and the shorter option wins otherwise:
the reported ``acc`` (BabyLM: a tie goes to the correct option), ``acc_tie_neutral`` (a k-way tie scores 1/k)
and ``tie_fraction`` must equal what the token counts predict, under each task's own aggregation. A bf16 copy
of a trained model ties exactly as often as the float32 model (log-probs are accumulated in float32)."""

from __future__ import annotations

import copy
import json
import random
from collections import defaultdict

import numpy as np
import pytest
import torch
from helpers import WORDS, macro, resps


def sentence(rng: random.Random, low: int = 2, high: int = 7) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize() + "."


def scored(tokenizer, context: str, continuation: str) -> int:
    """How many tokens BabyLM's rule scores for ``continuation`` after ``context``."""
    from babymerge.evaluation.lm import babylm_split

    return len(babylm_split(tokenizer, context, continuation)[1])


def predicted(counts: list[int]) -> tuple[float, float, float]:
    """(BabyLM acc, tie-neutral acc, tie) of one item whose options have these scored-token counts (fewer wins)."""
    best = min(counts)
    k = counts.count(best)
    won = counts[0] == best
    return float(won), (1.0 / k if won else 0.0), float(won and k > 1)


def write_jsonl(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def generated(tmp_path_factory, tiny_tokenizer):
    """BLiMP fast: equal-length pairs only; supplement, EWoK, Entity Tracking: lengths mixed, with expectations."""
    rng = random.Random(11)
    tok = tiny_tokenizer
    root = tmp_path_factory.mktemp("evaluation_data")
    fast = root / "fast_eval"
    by_length = defaultdict(list)
    for _ in range(400):
        s = sentence(rng)
        by_length[scored(tok, "", s)].append(s)
    equal = [(a, b) for group in by_length.values() for a, b in zip(group[::2], group[1::2], strict=False) if a != b]
    assert len(equal) >= 20
    blimp = [{"sentence_good": a, "sentence_bad": b, "UID": f"uid{i % 2}"} for i, (a, b) in enumerate(equal[:20])]
    write_jsonl(fast / "blimp_fast" / "pairs.jsonl", blimp)

    expected = {}
    items = {"supplement": [], "ewok": [], "entity": []}
    for name, n in (("hypernym", 14), ("qa_congruence", 6)):  # unequal groups: a macro-average is not a mean
        rows = [{"sentence_good": sentence(rng, 2, 4), "sentence_bad": sentence(rng, 2, 4)} for _ in range(n)]
        write_jsonl(fast / "supplement_fast" / f"{name}.jsonl", rows)
        items["supplement"] += [(name, predicted([scored(tok, "", r[k]) for k in r])) for r in rows]
    ewok = []
    for domain, n in (("physics", 14), ("social", 6)):
        for _ in range(n):
            context, targets = sentence(rng), [sentence(rng, 2, 4), sentence(rng, 2, 4)]
            ewok.append({"Domain": domain, "Context1": context, "Target1": targets[0], "Target2": targets[1]})
            items["ewok"].append((domain, predicted([scored(tok, context, " " + t) for t in targets])))
    write_jsonl(fast / "ewok_fast" / "items.jsonl", ewok)
    for split, n in (("regular", 15), ("ambiref", 8)):
        rows = []
        for i in range(n):
            prefix = sentence(rng) + " The box contains"
            options = [" " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))) for _ in range(3)]
            rows.append({"input_prefix": prefix, "options": options, "numops": i % 2})
            items["entity"].append(((split, i % 2), predicted([scored(tok, prefix, o) for o in options])))
        write_jsonl(fast / "entity_tracking_fast" / f"{split}.jsonl", rows)

    mixed = {"babylm_blimp_supplement_fast": "supplement", "babylm_ewok_fast": "ewok"}

    def aggregate(pairs, which):
        return macro([(key, values[which]) for key, values in pairs])

    for task, key in mixed.items():
        expected[task] = [aggregate(items[key], i) for i in range(2)] + [np.mean([v[2] for _, v in items[key]])]
    cells = items["entity"]
    per_split = [
        [macro([(ops, v[i]) for (s, ops), v in cells if s == split]) for split in ("regular", "ambiref")]
        for i in range(2)
    ]
    expected["babylm_entity_tracking_fast"] = [np.mean(per_split[0]), np.mean(per_split[1])]
    expected["babylm_entity_tracking_fast"].append(np.mean([v[2] for _, v in cells]))
    for task, key in (mixed | {"babylm_entity_tracking_fast": "entity"}).items():
        assert 0 < expected[task][2] < 1, f"the generated {task} items must mix ties and decided items"
        assert expected[task][1] != pytest.approx(np.mean([v[1] for _, v in items[key]])), "macro must differ"
    expected["babylm_blimp_fast"] = [1.0, 0.5, 1.0]
    return root, expected


def input_blind(tokenizer):
    """A tiny babyllava whose LM head is all zeros: every next-token distribution is uniform."""
    from babymerge.training.init import init_model

    model = init_model(tokenizer, "tiny", seed=4).eval()
    head = model.get_output_embeddings()
    zero = torch.nn.Linear(head.in_features, head.out_features, bias=False)
    torch.nn.init.zeros_(zero.weight)
    model.set_output_embeddings(zero)
    return model


def test_input_blind_model_ties_exactly_as_the_token_counts_predict(generated, tiny_tokenizer):
    from babymerge.evaluation import evaluate

    root, expected = generated
    out = evaluate(input_blind(tiny_tokenizer), tiny_tokenizer, list(expected), data_dir=root, batch_size=8)
    for task, (acc, neutral, ties) in expected.items():
        got = out["results"][task]
        reported = (got["acc,none"], got["acc_tie_neutral,none"], got["tie_fraction,none"])
        assert reported == pytest.approx((acc, neutral, ties), abs=1e-12), task


def test_sweep_stores_ties_and_its_tables_mark_them(generated, tiny_tokenizer, tmp_path):
    """The sweep's scorer rows carry the tie metrics into the store; the tables mark a score whose items tied,
    leave untied scores alone, and count the scores stored before ties were counted."""
    import csv
    from types import SimpleNamespace

    from babymerge.sweep.checkpoints import Checkpoint
    from babymerge.sweep.evaluate import babyllava_scorer
    from babymerge.sweep.merge import MergeSpec
    from babymerge.sweep.report import write_report
    from babymerge.sweep.stage import card_scores

    root, _ = generated
    scorer = babyllava_scorer(input_blind(tiny_tokenizer), tiny_tokenizer, ["babylm_blimp_fast"], data_dir=root)
    rows = scorer.score("babylm_blimp_fast")
    assert {r["metric"]: r["value"] for r in rows} == {"acc": 1.0, "acc_tie_neutral": 0.5, "tie_fraction": 1.0}
    untied = [{**r, "value": {"acc": 0.5, "acc_tie_neutral": 0.5, "tie_fraction": 0.0}[r["metric"]]} for r in rows]
    records = []
    for words in (1_000_000, 2_000_000):
        name = f"{words // 1_000_000}M"
        point = {"pair": f"text={name}+multimodal={name}", "method": "linear", "text": name, "multimodal": name}
        point |= {"text_words": words, "multimodal_words": words}
        for alpha, scored_rows in ((1.0, rows), (0.0, untied)):
            old = {"task": "babylm_ewok_fast", "metric": "acc", "value": 0.5}  # a store from before ties were counted
            records += [point | {"alpha": alpha} | r for r in [*scored_rows, old]]
    write_report(records, tmp_path)
    table = (tmp_path / "sweep_table.md").read_text()
    assert "| text=1M+multimodal=1M | linear | 1 | 100.00 (ties 100.00%) | 50.00 |" in table
    assert "| text=1M+multimodal=1M | linear | 0 | 50.00 | 50.00 |" in table
    assert "(ties x%): share of items" in table and "4 scores have no tie fraction stored" in table
    with open(tmp_path / "sweep_table.csv", newline="") as handle:
        assert [r["babylm_blimp_fast tie_fraction"] for r in csv.DictReader(handle)] == ["0.0", "100.0"] * 2
    equal = (tmp_path / "equal_words.md").read_text()
    assert "| 100.00 (ties 100.00%) / 50.00 | 50.00 / 50.00 |" in equal and "(ties x%)" in equal
    with open(tmp_path / "equal_words.csv", newline="") as handle:
        blimp = [r for r in csv.DictReader(handle) if r["task"] == "babylm_blimp_fast"]
    assert [(r["text_ties"], r["multimodal_ties"]) for r in blimp] == [("100.0", "0.0")] * 2
    # the card of a staged merge lists the tie fraction where items tied
    pair = (Checkpoint("1M", tmp_path, 1_000_000), Checkpoint("1M", tmp_path, 1_000_000))
    sweep = SimpleNamespace(config=SimpleNamespace(limit=None), random_backbone=False)
    cards = {alpha: card_scores(sweep, records, pair, MergeSpec(method="linear", alpha=alpha)) for alpha in (0, 1)}
    assert "| babylm_blimp_fast | tie_fraction | 100.00 |" in cards[1] and "tie_fraction" not in cards[0]


def trained(tokenizer, steps: int = 60):
    """A tiny babyllava trained briefly on generated sentences (peaked next-token distributions)."""
    from babymerge.training.init import init_model

    rng = random.Random(2)
    model = init_model(tokenizer, "tiny", seed=5)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        batch = tokenizer([sentence(rng) for _ in range(16)], padding=True, return_tensors="pt")
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    return model.eval()


def test_bf16_copy_ties_no_more_than_float32(tmp_path, tiny_tokenizer):
    from babymerge.evaluation import evaluate

    rng = random.Random(8)
    same = [sentence(rng) for _ in range(3)]  # identical pairs: the only ties float32 finds
    rows = [{"sentence_good": s, "sentence_bad": s, "UID": "same"} for s in same]
    for _ in range(57):  # minimal pairs: one word changed, log-probs close (a bf16 sum would round them together)
        words = sentence(rng, 6, 10).split()
        bad = list(words)
        bad[rng.randrange(1, len(words) - 1)] = rng.choice(WORDS)
        if bad != words:
            rows.append({"sentence_good": " ".join(words), "sentence_bad": " ".join(bad), "UID": "pairs"})
    write_jsonl(tmp_path / "fast_eval" / "blimp_fast" / "pairs.jsonl", rows)
    model = trained(tiny_tokenizer)
    runs = {}
    for dtype in (torch.float32, torch.bfloat16):
        copy_ = copy.deepcopy(model).to(dtype)
        runs[dtype] = evaluate(copy_, tiny_tokenizer, ["babylm_blimp_fast"], data_dir=tmp_path, log_samples=True)
    ties = {dtype: out["results"]["babylm_blimp_fast"]["tie_fraction,none"] for dtype, out in runs.items()}
    assert ties[torch.float32] == pytest.approx(3 / len(rows))
    assert ties[torch.bfloat16] == ties[torch.float32]
    lls = {
        d: np.array([resps(s) for s in sorted(o["samples"]["babylm_blimp_fast"], key=lambda s: s["doc_id"])])
        for d, o in runs.items()
    }
    assert np.abs(lls[torch.bfloat16] - lls[torch.float32]).max() < 0.1  # 0.026 measured on 376 such pairs


def test_tie_rules_per_item():
    from babymerge.evaluation.metrics import (
        BabyLMAnswer,
        choice_results,
        entity_tracking_accuracy,
        entity_tracking_results,
        group_score,
        group_score_tie_neutral,
        image_score,
        image_score_tie_neutral,
        image_tie_fraction,
        text_score,
        text_score_tie_neutral,
        winoground_results,
    )

    def answers(*lls):
        return [BabyLMAnswer((ll, False)) for ll in lls]

    assert choice_results({}, answers(-3.0, -3.0)) == {"acc": 1.0, "acc_tie_neutral": 0.5, "tie_fraction": 1.0}
    assert choice_results({}, answers(-4.0, -3.0)) == {"acc": 0.0, "acc_tie_neutral": 0.0, "tie_fraction": 0.0}
    doc = {"split": "regular", "numops": 1}
    three_way = entity_tracking_results(doc, answers(-1.0, -1.0, -1.0, -5.0))
    assert three_way["acc_tie_neutral"] == ("regular", 1, pytest.approx(1 / 3)) and three_way["tie_fraction"] == 1.0
    below_a_tie = entity_tracking_results(doc, answers(-2.0, -1.0, -1.0))  # wrong options tie: BabyLM says wrong
    assert below_a_tie["acc"][2] == below_a_tie["acc_tie_neutral"][2] == below_a_tie["tie_fraction"] == 0.0
    assert entity_tracking_accuracy([three_way["acc_tie_neutral"], ("regular", 0, 1.0), ("other", 0, 0.0)]) == (
        pytest.approx(((1 / 3 + 1) / 2 + 0) / 2)
    )
    # Winoground, as (s(c0|i0), s(c1|i0)) and (s(c1|i1), s(c0|i1)): example 0 ties its captions given image 0;
    # examples 1 and 2 each score a caption alike given either image (c0 in 1, c1 in 2); example 3 ties everything
    rows = [
        ({"example": 0, "image_key": "image_0"}, (-2.0, -2.0)),
        ({"example": 0, "image_key": "image_1"}, (-1.0, -3.0)),
        ({"example": 1, "image_key": "image_0"}, (-1.0, -4.0)),
        ({"example": 1, "image_key": "image_1"}, (-0.5, -1.0)),
        ({"example": 2, "image_key": "image_0"}, (-1.0, -2.0)),
        ({"example": 2, "image_key": "image_1"}, (-2.0, -3.0)),
        ({"example": 3, "image_key": "image_0"}, (-1.0, -1.0)),
        ({"example": 3, "image_key": "image_1"}, (-1.0, -1.0)),
    ]
    results = [winoground_results(doc, answers(*lls)) for doc, lls in rows]
    items = [r["text_score"] for r in results]
    assert [r["tie_fraction"] for r in results] == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    # text: (0, 1, 1, 0) strict, (1/2, 1, 1, 1/4) neutral; image: (1, 0, 0, 0) strict, (1, 1/2, 1/2, 1/4) neutral
    assert text_score(items) == 0.5 and text_score_tie_neutral(items) == pytest.approx(2.75 / 4)
    assert image_score(items) == 0.25 and image_score_tie_neutral(items) == pytest.approx(2.25 / 4)
    assert image_tie_fraction(items) == 0.75
    assert group_score(items) == 0.0 and group_score_tie_neutral(items) == pytest.approx((3 * 0.5 + 1 / 16) / 4)
