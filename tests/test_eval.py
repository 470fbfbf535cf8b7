"""Evaluation through lm-eval: scores equal an independent implementation of the BabyLM 2025 rules.

The data is read in place from ../shared/data through a BabyLM-layout folder of symlinks made in tmp.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import (
    macro,
    read_ewok_zip,
    read_jsonl_files,
    reference_logprob,
    resps,
    spread,
    winoground_features,
)

from babymerge.errors import BabymergeError
from babymerge.evaluation.docs import round_robin  # documents are listed round-robin across paradigms
from babymerge.features.store import FeatureFile


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer):
    return tiny_tokenizer


# --- tests --------------------------------------------------------------------------------------------------


def test_text_tasks_equal_the_babylm_rules(layout, shared_data, tokenizer):
    from babymerge.evaluation import evaluate
    from babymerge.training.init import init_model

    model = init_model(tokenizer, "tiny", seed=1, max_position_embeddings=2048).eval()
    blimp = [
        (r["UID"], "", [r["sentence_good"], r["sentence_bad"]])
        for _, r in read_jsonl_files(shared_data / "blimp" / "babylm_blimp_fast")
    ]
    supplement = [
        (stem, "", [r["sentence_good"], r["sentence_bad"]])
        for stem, r in read_jsonl_files(shared_data / "blimp_supplement" / "supplement_fast")
    ]
    ewok = [
        (r["Domain"], r["Context1"], [" " + r["Target1"], " " + r["Target2"]])
        for r in read_ewok_zip(shared_data / "ewok" / "ewok_fast_babylm2025.zip", b"BabyLM2025")
    ]
    tracking = [
        (f"{stem}_{r['numops']}", r["input_prefix"], r["options"])
        for stem, r in read_jsonl_files(shared_data / "entity_tracking" / "fast")
    ]
    wug = [
        (r["ratio"], "", r["sentences"].split("\t"))
        for _, r in read_jsonl_files(shared_data / "wug" / "wug_adj_nominalization")
    ]
    reference = {
        "babylm_blimp_fast": blimp,
        "babylm_blimp_supplement_fast": supplement,
        "babylm_ewok_fast": ewok,
        "babylm_entity_tracking_fast": tracking,
        "babylm_wug_adj": wug,
    }
    reference = {
        t: items if t == "babylm_wug_adj" else round_robin(items, lambda x: x[0]) for t, items in reference.items()
    }
    sizes = {"babylm_blimp_fast": 16, "babylm_entity_tracking_fast": 5}
    picks = {task: spread(len(items), sizes.get(task, 8)) for task, items in reference.items()}
    out = evaluate(model, tokenizer, list(reference), data_dir=layout, samples=picks, batch_size=8, log_samples=True)

    for task, items in reference.items():
        samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
        assert [s["doc_id"] for s in samples] == picks[task]
        per_doc = []
        for sample in samples:
            key, prefix, candidates = items[sample["doc_id"]]
            expected = [reference_logprob(model, tokenizer, prefix, c) for c in candidates]
            assert np.allclose(resps(sample), expected, atol=1e-4, rtol=0), (task, sample["doc_id"])
            per_doc.append((key, expected))
        result = out["results"][task]
        if task == "babylm_wug_adj":
            p_first = [np.exp(e[0]) / (np.exp(e[0]) + np.exp(e[1])) for _, e in per_doc]
            human = [key for key, _ in per_doc]
            rho = np.corrcoef(pd.Series(p_first).rank(), pd.Series(human).rank())[0, 1]
            assert result["spearman,none"] == pytest.approx(rho, abs=1e-6)
        elif task == "babylm_entity_tracking_fast":
            cells = defaultdict(list)
            for key, e in per_doc:
                cells[key].append(float(e[0] >= max(e[1:])))
            # one file (regular): mean over numops of the accuracy per numops
            assert result["acc,none"] == pytest.approx(np.mean([np.mean(v) for v in cells.values()]))
        else:
            assert len({k for k, _ in per_doc}) > 1  # several UIDs: the macro-average is exercised
            assert result["acc,none"] == pytest.approx(macro([(k, float(e[0] >= e[1])) for k, e in per_doc]))


def test_images_change_winoground_and_mixed_requests(layout, shared_data, tokenizer):
    """Winoground rows read their image's features; BLiMP in the same call sees the black image."""
    from babymerge.evaluation import evaluate
    from babymerge.training.init import init_model

    model = init_model(tokenizer, "tiny", seed=2, vision_feature_dim=512).eval()
    features = winoground_features(shared_data)
    rows = [
        json.loads(x)
        for x in (shared_data / "winoground" / "babylm_winoground_filtered" / "winoground.jsonl")
        .read_text()
        .splitlines()
    ]
    picks = {"babylm_winoground": list(range(12)), "babylm_blimp_fast": [0, 500, 1000]}
    out = evaluate(
        model, tokenizer, list(picks), data_dir=layout, features=features, samples=picks, batch_size=8, log_samples=True
    )

    scores = {}
    for sample in out["samples"]["babylm_winoground"]:
        row = rows[sample["doc_id"]]
        image = features.get(f"{row['image_idx']}_{row['image_key']}.png")
        expected = [reference_logprob(model, tokenizer, "", row[c], image) for c in ("caption_0", "caption_1")]
        black = [reference_logprob(model, tokenizer, "", row[c]) for c in ("caption_0", "caption_1")]
        assert np.allclose(resps(sample), expected, atol=1e-4, rtol=0)
        assert min(abs(a - b) for a, b in zip(expected, black, strict=True)) > 1e-3  # the image matters
        scores[(row["image_idx"], row["image_key"])] = expected
    blimp = round_robin(read_jsonl_files(shared_data / "blimp" / "babylm_blimp_fast"), lambda x: x[1]["UID"])
    for sample in out["samples"]["babylm_blimp_fast"]:
        record = blimp[sample["doc_id"]][1]
        expected = [reference_logprob(model, tokenizer, "", record[k]) for k in ("sentence_good", "sentence_bad")]
        assert np.allclose(resps(sample), expected, atol=1e-4, rtol=0)

    # classic scores from the four P(caption | image) of each example (rows 2k, 2k+1 are its two images)
    text = image_ok = group = 0
    examples = sorted({k[0] for k in scores})
    for ex in examples:
        (c0_i0, c1_i0), (c1_i1, c0_i1) = scores[(ex, "image_0")], scores[(ex, "image_1")]
        t, i = c0_i0 > c1_i0 and c1_i1 > c0_i1, c0_i0 > c0_i1 and c1_i1 > c1_i0
        text, image_ok, group = text + t, image_ok + i, group + (t and i)
    result = out["results"]["babylm_winoground"]
    assert result["acc,none"] == pytest.approx(np.mean([s[0] >= s[1] for s in scores.values()]))
    assert result["text_score,none"] == pytest.approx(text / len(examples))
    assert result["image_score,none"] == pytest.approx(image_ok / len(examples))
    assert result["group_score,none"] == pytest.approx(group / len(examples))


def test_caption_matching_scores_the_image(layout, shared_data, tokenizer):
    from babymerge.evaluation import evaluate
    from babymerge.training.init import init_model

    model = init_model(tokenizer, "tiny", seed=3).eval()
    table = pd.read_csv(shared_data / "flickr8k_1k" / "captions.txt")  # quoted captions may hold commas
    captions = defaultdict(list)
    for image, caption in zip(table["image"], table["caption"], strict=True):
        captions[image].append(caption.strip())
    images = list(captions)
    generator = torch.Generator().manual_seed(0)
    features = FeatureFile(images, 3 * torch.randn(len(images), 1, 32, generator=generator), torch.zeros(1, 32))
    swapped = FeatureFile(images[::-1], features.features, features.black)  # every image gets another's features

    picks = {"babylm_caption_matching_fast": [0, 7, 400, 999]}
    runs = [
        evaluate(model, tokenizer, list(picks), data_dir=layout, features=f, samples=picks, log_samples=True)
        for f in (features, swapped)
    ]
    for own, other in zip(
        *(sorted(r["samples"]["babylm_caption_matching_fast"], key=lambda s: s["doc_id"]) for r in runs), strict=True
    ):
        k = own["doc_id"]
        true, distractor = captions[images[k]][0], captions[images[(k + len(images) // 2) % len(images)]][0]
        assert own["doc"]["captions"] == [true, distractor]
        expected = [reference_logprob(model, tokenizer, "", c, features.get(images[k])) for c in (true, distractor)]
        assert np.allclose(resps(own), expected, atol=1e-4, rtol=0)
        assert min(abs(a - b) for a, b in zip(resps(own), resps(other), strict=True)) > 1e-3


def test_plain_hf_model_type(layout, shared_data, tokenizer, make_checkpoint):
    """``--model hf`` on a checkpoint folder: entity tracking and EWoK equal the BabyLM rules (with this tiny
    vocabulary every EWoK target starts with a lone space token, scored by both); whole-sentence tasks, where
    lm-eval would condition on ``<s>`` alone instead of ``<s> <image>``, stop with one message naming
    ``--model babyllava``."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM

    from babymerge.evaluation import tasks_dir
    from babymerge.evaluation.metrics import ModelTypeError

    folder = make_checkpoint(4)
    lm = HFLM(pretrained=str(folder), trust_remote_code=True, device="cpu", batch_size=4)
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    picks = {
        "babylm_entity_tracking_fast": [0, 600],
        "babylm_ewok_fast": [0, 7],
    }  # lines 0, 100 and 0, 700 (round-robin)
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata={"data_dir": str(layout)})
    out = simple_evaluate(model=lm, tasks=list(picks), task_manager=manager, samples=picks, bootstrap_iters=0)
    tracking = round_robin(read_jsonl_files(shared_data / "entity_tracking" / "fast"), lambda x: (x[0], x[1]["numops"]))
    for sample in out["samples"]["babylm_entity_tracking_fast"]:
        record = tracking[sample["doc_id"]][1]
        expected = [reference_logprob(model, tokenizer, record["input_prefix"], o) for o in record["options"]]
        assert np.allclose(resps(sample), expected, atol=1e-4, rtol=0)
    ewok = round_robin(
        read_ewok_zip(shared_data / "ewok" / "ewok_fast_babylm2025.zip", b"BabyLM2025"), lambda r: r["Domain"]
    )
    for sample in out["samples"]["babylm_ewok_fast"]:
        record = ewok[sample["doc_id"]]
        targets = [" " + record["Target1"], " " + record["Target2"]]
        expected = [reference_logprob(model, tokenizer, record["Context1"], t) for t in targets]
        assert np.allclose(resps(sample), expected, atol=1e-4, rtol=0)
    scored = []
    lm.loglikelihood = lambda requests, **kwargs: scored.append(len(requests)) or [(0.0, True)] * len(requests)
    for task in ("babylm_blimp_fast", "babylm_wug_adj"):
        with pytest.raises(ModelTypeError, match=r"need `--model babyllava`"):
            simple_evaluate(model=lm, tasks=[task], task_manager=manager, samples={task: [0]}, bootstrap_iters=0)
    assert scored == []  # stopped before scoring anything, not after


def test_identical_blimp_pairs_count_as_correct(layout, shared_data, tokenizer):
    """BLiMP fast holds pairs whose two sentences are identical: BabyLM's tie rule makes them correct."""
    from babymerge.evaluation import evaluate
    from babymerge.training.init import init_model

    records = round_robin(read_jsonl_files(shared_data / "blimp" / "babylm_blimp_fast"), lambda x: x[1]["UID"])
    same = [i for i, (_, r) in enumerate(records) if r["sentence_good"] == r["sentence_bad"]]
    assert len(same) == 3
    model = init_model(tokenizer, "tiny", seed=1).eval()
    picks = {"babylm_blimp_fast": same}
    out = evaluate(model, tokenizer, list(picks), data_dir=layout, samples=picks, batch_size=8, log_samples=True)
    for sample in out["samples"]["babylm_blimp_fast"]:
        good, bad = resps(sample)
        assert good == bad
    assert out["results"]["babylm_blimp_fast"]["acc,none"] == 1.0


def test_wug_aggregate_is_the_float32_softmax_spearman():
    """BabyLM takes the two-sentence softmax in float32: gaps past ~17 nats saturate at 1.0 and tie."""
    from scipy.stats import rankdata

    from babymerge.evaluation.metrics import BabyLMAnswer, spearman, wug_results

    rng = np.random.default_rng(0)
    first = rng.uniform(-60, -20, 200)
    gaps = np.concatenate([rng.uniform(-3, 3, 100), rng.uniform(18, 40, 100)])  # half of them saturate
    ratios = rng.uniform(0, 1, 200)
    items = [
        wug_results({"ratio": r}, [BabyLMAnswer((a, False)), BabyLMAnswer((a - g, False))])["spearman"]
        for a, g, r in zip(first, gaps, ratios, strict=True)
    ]
    pairs = torch.tensor(np.stack([first, first - gaps], axis=1), dtype=torch.float32)
    p_first = torch.softmax(pairs, dim=1)[:, 0].numpy()
    assert (p_first == 1.0).sum() > 50
    expected = np.corrcoef(rankdata(p_first), rankdata(ratios))[0, 1]
    float64 = np.corrcoef(rankdata(1 / (1 + np.exp(-gaps))), rankdata(ratios))[0, 1]
    assert spearman(items) == pytest.approx(expected, abs=1e-9)
    assert abs(expected - float64) > 1e-3


def test_malformed_and_missing_data_name_the_file(tmp_path, tokenizer):
    from babymerge.evaluation import evaluate
    from babymerge.training.init import init_model

    model = init_model(tokenizer, "tiny", seed=0)
    folder = tmp_path / "data" / "fast_eval" / "blimp_fast"
    folder.mkdir(parents=True)
    (folder / "broken.jsonl").write_text('{"sentence_good": "A cat runs.", "UID": "x"}\n')
    with pytest.raises(BabymergeError, match=r"broken\.jsonl: line 1 lacks field\(s\) \['sentence_bad'\]"):
        evaluate(model, tokenizer, ["babylm_blimp_fast"], data_dir=tmp_path / "data")
    (folder / "broken.jsonl").write_text("{not json\n")
    with pytest.raises(BabymergeError, match=r"broken\.jsonl: line 1 is not valid JSON"):
        evaluate(model, tokenizer, ["babylm_blimp_fast"], data_dir=tmp_path / "data")
    with pytest.raises(BabymergeError, match=r"ewok_fast: not found .*looked in data dir .*data"):
        evaluate(model, tokenizer, ["babylm_ewok_fast"], data_dir=tmp_path / "data")


def test_data_errors_count_lines_per_file_and_refuse_empty_files(tmp_path):
    """A bad line in the second file is reported with that file's line number; an empty file is refused."""
    from babymerge.evaluation.docs import minimal_pairs

    folder = tmp_path / "fast_eval" / "blimp_fast"
    folder.mkdir(parents=True)
    pair = json.dumps({"sentence_good": "A cat runs.", "sentence_bad": "A cat run.", "UID": "a"})
    (folder / "a.jsonl").write_text("\n".join([pair] * 5) + "\n")
    (folder / "b.jsonl").write_text(f"{pair}\n\n{{broken\n")
    with pytest.raises(BabymergeError, match=r"b\.jsonl: line 3 is not valid JSON"):
        minimal_pairs("blimp_fast", data_dir=str(tmp_path))
    (folder / "b.jsonl").write_text("\n")
    with pytest.raises(BabymergeError, match=r"b\.jsonl: empty data file"):
        minimal_pairs("blimp_fast", data_dir=str(tmp_path))


def test_image_task_errors(layout, shared_data, tokenizer):
    from babymerge.evaluation import evaluate
    from babymerge.training.init import init_model

    model = init_model(tokenizer, "tiny", seed=0, vision_feature_dim=512)
    picks = {"babylm_winoground": [0]}
    with pytest.raises(BabymergeError, match="no feature file given"):
        evaluate(model, tokenizer, list(picks), data_dir=layout, samples=picks)
    few = FeatureFile(["other.png"], torch.zeros(1, 1, 512), torch.zeros(1, 512))
    with pytest.raises(BabymergeError, match=r"image '0_image_0' is not in the feature file"):
        evaluate(model, tokenizer, list(picks), data_dir=layout, features=few, samples=picks)
    narrow = FeatureFile(["0_image_0"], torch.zeros(1, 1, 32), torch.zeros(1, 32))
    with pytest.raises(BabymergeError, match=r"model expects .* = \(1, 512\)"):
        evaluate(model, tokenizer, list(picks), data_dir=layout, features=narrow, samples=picks)


def test_summary_table_lists_every_metric():
    from babymerge.evaluation import summary_table

    table = summary_table(
        {"results": {"t": {"alias": "t", "acc,none": 0.5, "acc_stderr,none": "N/A", "text_score,none": 0.25}}}
    )
    assert table.splitlines()[2:] == ["| t | acc | 50.00 |", "| t | text_score | 25.00 |"]


def test_blimp_original_covers_lm_evals_blimp_paradigms(layout):
    """Offline stand-in for lm-eval's own ``blimp`` (Hub data): the same 67 paradigms, 1000 pairs each."""
    import lm_eval
    import yaml

    from babymerge.evaluation.docs import minimal_pairs

    folder = Path(lm_eval.__file__).parent / "tasks" / "blimp"
    paradigms = {
        yaml.safe_load(f.read_text())["dataset_name"] for f in folder.glob("*.yaml") if not f.name.startswith("_")
    }
    counts = pd.Series(minimal_pairs("blimp_original", data_dir=str(layout))["test"]["uid"]).value_counts()
    assert set(counts.index) == paradigms and len(paradigms) == 67
    assert set(counts) == {1000}


def test_babyllava_model_type_does_not_run_foreign_remote_code(tmp_path):
    """babyllava loads with babymerge's own classes; another checkpoint's code runs only when asked."""
    from babymerge.evaluation.lm import BabyLlavaLM

    marker = tmp_path / "code_ran"
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"model_type": "sneaky", "auto_map": {"AutoConfig": "conf.SneakyConfig"}, "architectures": ["M"]})
    )
    (folder / "conf.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nfrom transformers import PretrainedConfig\n"
        "class SneakyConfig(PretrainedConfig):\n    model_type = 'sneaky'\n"
    )
    with pytest.raises(Exception, match="trust_remote_code"):
        BabyLlavaLM(pretrained=str(folder), device="cpu")
    assert not marker.exists()
