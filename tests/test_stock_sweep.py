"""``babymerge sweep`` over a stock transformers LLaVA (CLIP tower) and a text-only Llama: text and image tasks
(raw images), resume, the parents at alpha 0 and 1, and each pair's own vision tower and projector."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from helpers import CLI, WORDS, CountingScorer, offline_env, save_llava, save_text_lm, weights, word_tokenizer
from test_stock_llava import layout

TASKS = ["babylm_blimp_fast", "babylm_caption_matching"]
OWN = ("vision_tower.", "multi_modal_projector.")  # a stock LLaVA's tensors outside its language model


@pytest.fixture(scope="module")
def stock_pair(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(a stock LLaVA, a Llama of its language model's shape, a data folder: 8 images, 24 BLiMP-format pairs)."""
    root = tmp_path_factory.mktemp("stock_pair")
    tokenizer = word_tokenizer(WORDS)
    data = layout(root / "data", images=8)
    rng = random.Random(1)
    pairs = [rng.sample(WORDS, 5) for _ in range(24)]
    lines = [json.dumps({"sentence_good": " ".join(w), "sentence_bad": " ".join(w[::-1])}) for w in pairs]
    (data / "fast_eval" / "blimp_fast" / "p.jsonl").write_text("\n".join(lines) + "\n")
    llava = save_llava(root / "llava", tokenizer, "llama", "clip", seed=5)
    return llava, save_text_lm(root / "llama", tokenizer, "llama", seed=6), data


def sweep(text: Path, llava: Path, data: Path, out: Path, *extra: str):
    import subprocess

    args = ["sweep", "--text", text, "--multimodal", llava, "--methods", "linear", "--alphas", "0,0.5,1"]
    args += ["--tasks", ",".join(TASKS), "--data-dir", data, "--out", out, "--no-progress", *extra]
    return subprocess.run([*CLI, *map(str, args)], env=offline_env(), capture_output=True, text=True, timeout=600)


def stored(out: Path) -> dict[tuple, dict]:
    """The stored records with their items, by (alpha, task, metric)."""
    from babymerge.sweep.store import ResultStore

    records = ResultStore(out / "results.jsonl").records(with_items=True)
    return {(r["alpha"], r["task"], r["metric"]): r for r in records}


def values(items: list) -> list[float]:
    """Per-document accuracies (BLiMP's items are ``(uid, value)``)."""
    return [item[-1] if isinstance(item, (list, tuple)) else item for item in items]


def items(record: dict) -> list[float]:
    from babymerge.sweep.items import FIELD, decode

    return values(decode(record[FIELD]))


def own_scores(llava: Path, data: Path, tasks: list[str]) -> dict[str, tuple[float, list[float]]]:
    """The stock scorer on the LLaVA itself: each task's accuracy and per-document accuracies."""
    from test_stock_llava import run

    out = run(llava, data, tasks)
    return {t: (out["results"][t]["acc,none"], values([s["acc"] for s in out["samples"][t]])) for t in tasks}


def text_lm_blimp(text: Path, data: Path) -> list[float]:
    """BabyLM's causal rule on the Llama itself (whole sentence, special tokens, first token unscored)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from babymerge.evaluation.docs import minimal_pairs

    model, tokenizer = AutoModelForCausalLM.from_pretrained(text).eval(), AutoTokenizer.from_pretrained(text)

    def logprob(sentence: str) -> float:
        ids = torch.tensor([tokenizer(sentence, add_special_tokens=True)["input_ids"]])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
        return sum(float(logprobs[i - 1, ids[0, i]]) for i in range(1, ids.shape[1]))

    docs = minimal_pairs("blimp_fast", str(data))["test"]
    return [float(logprob(doc["good"]) >= logprob(doc["bad"])) for doc in docs]


def test_stock_sweep_resumes_and_its_ends_are_the_parents(stock_pair, tmp_path):
    llava, text, data = stock_pair
    first = sweep(text, llava, data, tmp_path / "out", "--materialize", "linear:0.5")
    assert first.returncode == 0, first.stderr[-2000:]
    assert (tmp_path / "out" / "plots" / "babylm_caption_matching_vs_alpha.png").is_file()
    lines = (tmp_path / "out" / "results.jsonl").read_text()
    again = sweep(text, llava, data, tmp_path / "out")
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "out" / "results.jsonl").read_text() == lines  # the second run scored nothing
    assert first.stdout.split("wrote")[0] == again.stdout.split("wrote")[0]  # the same table

    records = stored(tmp_path / "out")
    control = "babylm_caption_matching_no_image"
    for task, (score, per_doc) in own_scores(llava, data, [*TASKS, control]).items():
        record = records[(0.0, task, "acc")]
        assert (record["value"], items(record)) == (score, per_doc), task
    at_one = records[(1.0, "babylm_blimp_fast", "acc")]
    expected = text_lm_blimp(text, data)
    assert items(at_one) == expected and at_one["value"] == pytest.approx(sum(expected) / len(expected))
    assert 0 < sum(expected) < len(expected)  # the items can tell the parents apart
    assert items(at_one) != items(records[(0.0, "babylm_blimp_fast", "acc")])

    from babymerge.sweep.merge import MergeSpec
    from babymerge.sweep.run import Sweep, SweepConfig

    config = SweepConfig(text=text, multimodal=llava, methods=["linear"], data_dir=data, store=tmp_path / "r.jsonl")
    run = Sweep(config, progress=False)
    scored = run.merged_state(run.pairs()[0], MergeSpec(method="linear", alpha=0.5))
    (folder,) = (tmp_path / "out" / "merged").iterdir()  # --materialize: the LLaVA that was scored, whole
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["LlavaForConditionalGeneration"]
    written = weights(folder)
    assert written.keys() == scored.keys()
    assert all(torch.equal(written[name], tensor) for name, tensor in scored.items())


def test_a_changed_raw_image_rescores_only_the_image_task(stock_pair, tmp_path):
    import shutil

    llava, text, data = stock_pair
    shutil.copytree(data, tmp_path / "data")
    assert sweep(text, llava, tmp_path / "data", tmp_path / "out").returncode == 0
    before = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    image = sorted((tmp_path / "data" / "extra_eval" / "caption_matching" / "images").iterdir())[0]
    image.write_bytes(sorted(image.parent.iterdir())[1].read_bytes())
    assert sweep(text, llava, tmp_path / "data", tmp_path / "out").returncode == 0
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    added = [json.loads(line) for line in lines[len(before) :]]
    assert {r["task"] for r in added} == {"babylm_caption_matching"}  # its control reads no image
    assert {r["alpha"] for r in added} == {0.0, 0.5, 1.0}


def test_features_or_missing_images_are_refused_before_a_model_loads(stock_pair, tmp_path):
    from babymerge.errors import BabymergeError
    from babymerge.sweep.run import Sweep, SweepConfig

    llava, text, data = stock_pair
    config = {"text": text, "multimodal": llava, "data_dir": data, "store": tmp_path / "r.jsonl", "pairing": ["final"]}
    with pytest.raises(BabymergeError, match=r"^--features f\.safetensors: \S+ is a stock LLaVA, which reads raw"):
        Sweep(SweepConfig(**config, tasks=TASKS, features="f.safetensors"))
    with pytest.raises(BabymergeError) as caught:
        Sweep(SweepConfig(**config, tasks=["babylm_winoground"]))
    message = str(caught.value)
    assert "\n" not in message and message.startswith("--tasks babylm_winoground (Winoground): a stock LLaVA reads raw")
    assert str(data / "full_eval" / "winoground_filtered" / "images") in message


def checkpoints(root: Path, save, seeds: dict[str, int]) -> Path:
    """A training run's ``checkpoints/NAME`` folders, one model per milestone (``save(folder, seed)``)."""
    for name, seed in seeds.items():
        folder = save(root / "checkpoints" / name, seed)
        (folder / "babymerge_training.json").write_text(json.dumps({"words_seen": int(name[:-1]) * 1_000_000}))
    return root


@pytest.mark.parametrize("pairing", ["aligned", "best"])
def test_each_merge_keeps_its_own_pairs_vision_tower_and_projector(pairing, stock_pair, tmp_path):
    from babymerge.sweep.merge import MergeSpec
    from babymerge.sweep.run import Sweep, SweepConfig

    _, _, data = stock_pair
    tokenizer = word_tokenizer(WORDS)
    # seed 11's weights sum higher than seed 12's: best (CountingScorer scores that sum) picks 1M, not the last
    mm = checkpoints(tmp_path / "mm", lambda f, s: save_llava(f, tokenizer, "llama", "clip", s), {"1M": 11, "2M": 12})
    text = checkpoints(tmp_path / "text", lambda f, s: save_text_lm(f, tokenizer, "llama", s), {"1M": 21, "2M": 22})
    config = SweepConfig(
        text=text,
        multimodal=mm,
        methods=["linear"],
        alphas=[0.4],
        tasks=["babylm_blimp_fast"],
        pairing=[pairing],
        select_multimodal_by="babylm_caption_matching",
        data_dir=data,
        store=tmp_path / "results.jsonl",
    )
    run = Sweep(config, scorer_factory=CountingScorer, progress=False)
    pairs = run.pairs()
    assert [m.name for _, m in pairs] == (["1M", "2M"] if pairing == "aligned" else ["1M"])
    first, last = weights(mm / "checkpoints" / "1M"), weights(mm / "checkpoints" / "2M")
    differ = {n.split(".")[0] for n in first if n.startswith(OWN) and not torch.equal(first[n], last[n])}
    assert differ == {"vision_tower", "multi_modal_projector"}  # taking them from the other checkpoint would show
    for text_ckpt, mm_ckpt in pairs:
        merged = run.merged_state((text_ckpt, mm_ckpt), MergeSpec(method="linear", alpha=0.4))
        own, lm = weights(mm_ckpt.path), weights(text_ckpt.path)
        assert set(merged) == set(own)
        for name, tensor in merged.items():
            if name.startswith(OWN):
                assert torch.equal(tensor, own[name]), (mm_ckpt.name, name)
            else:
                expected = 0.4 * lm[name.replace("language_model.", "", 1)] + 0.6 * own[name]
                torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-6, msg=name)
        run.slot.load(merged)  # the scored model holds them under its own names
        loaded = run.model.state_dict()
        for name in own:
            if name.startswith(OWN):
                assert torch.equal(loaded[f"model.{name}"], own[name]), (mm_ckpt.name, name)


def test_the_readmes_stock_llava_loop_runs(stock_pair, tmp_path):
    """README "Stock LLaVA": its commands as written, on the tiny pair and data, from a folder laid out as it says."""
    import os
    import re
    import shutil
    import subprocess
    import sys

    from helpers import REPO

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Stock LLaVA") :]
    script = section[section.index("```bash\n") + 8 : section.index("```\n", section.index("```bash\n") + 8)]
    llava, text, data = stock_pair
    shutil.copytree(llava, tmp_path / "ckpt" / "llava")
    shutil.copytree(text, tmp_path / "ckpt" / "llama")
    shutil.copytree(data, tmp_path / "evaluation_data")
    (tmp_path / "merge_recipes").symlink_to(REPO / "merge_recipes")
    env = offline_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(re.findall(r"^(mergekit-yaml|babymerge) ", script, re.M)) == 4  # merge, eval, sweep, push
    assert (tmp_path / "sweeps" / "llava-llama" / "sweep_table.md").is_file()
    card = done.stdout[done.stdout.index("---\nbase_model:") :]  # push prints the card last
    assert card.startswith("---\nbase_model:\n- llava-org/llava-model\n- llama-org/llama-model\n")
    assert "base_model_relation: merge" in card and "| babylm_caption_matching | acc |" in card  # saved results
