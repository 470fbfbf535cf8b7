"""BabyLM's scored-token rule on data the test generates, so a machine without ../shared still checks it:
BLiMP-format pairs (whole sentence scored) and EWoK-like items whose targets follow a space (only
``" " + target`` scored, its leading space token included, even when the tokenizer makes that space a lone
zero-width token), against the independent implementation in test_eval.py, with the macro-averages."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from helpers import WORDS, macro, reference_logprob, resps

from babymerge.evaluation.docs import round_robin

UNSEEN = "Zebras Oboes quietly yodel Xylophones never sing".split()  # no merges: lone space tokens


def sentence(rng: random.Random, words: list[str]) -> str:
    return " ".join(rng.choice(words) for _ in range(rng.randint(3, 7))).capitalize() + "."


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    rng = random.Random(5)
    root = tmp_path_factory.mktemp("evaluation_data")
    blimp = root / "fast_eval" / "blimp_fast"
    blimp.mkdir(parents=True)
    pairs = {}
    for uid in ("agreement", "islands"):
        rows = [
            {"sentence_good": sentence(rng, WORDS), "sentence_bad": sentence(rng, WORDS + UNSEEN), "UID": uid}
            for _ in range(6)
        ]
        (blimp / f"{uid}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        pairs[uid] = rows
    ewok = root / "fast_eval" / "ewok_fast"
    ewok.mkdir(parents=True)
    items = []
    for domain in ("physics", "social"):
        for i in range(6):
            targets = [sentence(rng, WORDS), sentence(rng, UNSEEN if i % 2 else WORDS)]
            context = sentence(rng, WORDS)[: -1 if i % 3 == 0 else None]  # some contexts end without a period
            items.append({"Domain": domain, "Context1": context, "Target1": targets[0], "Target2": targets[1]})
    (ewok / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    return root, pairs, items


def test_babylm_rule_on_generated_blimp_and_ewok(generated, tiny_tokenizer):
    from babymerge.evaluation import evaluate
    from babymerge.training.init import init_model

    root, pairs, items = generated
    tokenizer = tiny_tokenizer
    lone_space = 0
    for item in items:
        for target in (item["Target1"], item["Target2"]):
            full = item["Context1"] + " " + target
            offsets = tokenizer(full, add_special_tokens=True, return_offsets_mapping=True)["offset_mapping"]
            first = next(o for o in offsets if o[1] > len(item["Context1"]))
            lone_space += first[0] == first[1]  # the zero-width space token that BabyLM's rule scores
    assert lone_space > 0, "the generated items must exercise the lone space token"

    model = init_model(tokenizer, "tiny", seed=3).eval()
    tasks = ["babylm_blimp_fast", "babylm_ewok_fast"]
    out = evaluate(model, tokenizer, tasks, data_dir=root, batch_size=4, log_samples=True)
    reference = {
        "babylm_blimp_fast": [(u, "", [r["sentence_good"], r["sentence_bad"]]) for u in pairs for r in pairs[u]],
        "babylm_ewok_fast": [(r["Domain"], r["Context1"], [" " + r["Target1"], " " + r["Target2"]]) for r in items],
    }
    for task, expected_items in reference.items():
        expected_items = round_robin(expected_items, lambda item: item[0])  # the order of the documents
        samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
        assert len(samples) == len(expected_items)
        per_doc = []
        for sample, (key, prefix, candidates) in zip(samples, expected_items, strict=True):
            expected = [reference_logprob(model, tokenizer, prefix, c) for c in candidates]
            assert np.allclose(resps(sample), expected, atol=1e-4, rtol=0), (task, sample["doc_id"])
            per_doc.append((key, float(expected[0] >= expected[1])))
        assert out["results"][task]["acc,none"] == pytest.approx(macro(per_doc))
