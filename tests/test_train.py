"""Training: data preparation, word counting, milestones, resume and reproducibility on real BabyLM text and
Flickr8k images (features from a tiny randomly initialised DINOv2)."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import pre_tokenizers
from transformers import TrainerCallback

from babymerge.cli import main
from babymerge.errors import BabymergeError
from babymerge.features.model_fields import model_fields
from babymerge.features.store import FeatureFile
from babymerge.formats.captions import read_captions
from babymerge.training import TrainConfig, milestone_name, train
from babymerge.training.data import (
    Collator,
    block_begins,
    build_dataset,
    image_prefix,
    mix_by_words,
    pack,
    sentence_starts,
    tokenize_text,
    words_per_token,
)
from babymerge.training.init import init_model, save_checkpoint
from babymerge.training.milestones import milestones
from babymerge.training.tokenizer import text_files, train_tokenizer

NUM_IMAGES = 12


def dinov2_features(image_dir: Path, names: list[str]) -> FeatureFile:
    """Pooled features of a tiny random DINOv2: hidden layer -2 without CLS, mean over patches."""
    import numpy as np
    from PIL import Image
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    backbone = Dinov2Model(
        Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=56)
    ).eval()
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])

    def pixels(image: Image.Image) -> torch.Tensor:
        array = np.asarray(image.convert("RGB").resize((56, 56)), dtype=np.float32) / 255
        return ((torch.from_numpy(array) - mean) / std).permute(2, 0, 1)

    images = [pixels(Image.open(image_dir / name)) for name in names] + [pixels(Image.new("RGB", (56, 56)))]
    with torch.no_grad():
        hidden = backbone(torch.stack(images), output_hidden_states=True).hidden_states[-2]
    pooled = hidden[:, 1:].mean(dim=1, keepdim=True)
    return FeatureFile(names, pooled[:-1].clone(), pooled[-1].clone(), {"backbone": "tiny-random-dinov2"})


@pytest.fixture(scope="module")
def setup(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("train")
    text_dir = shared_data / "babylm_text" / "train_600k"
    sample = root / "sample.train"  # tokenizer training text: a slice, kept in the temporary folder only
    sample.write_text((text_dir / "childes.train").read_text()[:80_000])
    tokenizer = train_tokenizer([sample], vocab_size=400, min_frequency=2)
    image_dir = shared_data / "flickr8k_1k" / "images"
    features = dinov2_features(image_dir, sorted(p.name for p in image_dir.iterdir())[:NUM_IMAGES])
    features.save(root / "features.safetensors")
    init = root / "init"
    save_checkpoint(init_model(tokenizer, "tiny", seed=0, **model_fields(features)), tokenizer, init)
    return {
        "root": root,
        "text": text_dir,
        "captions": shared_data / "flickr8k_1k" / "captions.txt",
        "features": root / "features.safetensors",
        "init": init,
        "tokenizer": tokenizer,
    }


def config(setup, out: str, **fields) -> TrainConfig:
    base = dict(
        mode="text",
        init=setup["init"],
        text=setup["text"],
        out=setup["root"] / out,
        text_max_words=6000,
        max_length=64,
        batch_size=8,
        learning_rate=3e-3,
        warmup_steps=0,
        logging_steps=2,
        save_steps=10,
        milestone_unit=1000,
        cache_dir=setup["root"] / "cache",
        progress=False,
    )
    return TrainConfig(**{**base, **fields})


def loss_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]


def test_words_counted_exactly_on_one_long_line(setup, tmp_path):
    tokenizer, source = setup["tokenizer"], setup["text"] / "gutenberg.train"
    assert source.read_text().count("\n") <= 1  # the BabyLM file is one long line
    stream = tokenize_text(tokenizer, [source], max_words=3000, progress=False)
    assert stream.num_words == 3000
    assert stream.ids[-1] == tokenizer.eos_token_id
    folder = text_files(setup["text"])
    assert len(folder) >= 2
    for limit in (1003, 7):  # spread over the files, even when there are fewer words than files
        counted = tokenize_text(tokenizer, folder, max_words=limit, progress=False)
        assert counted.num_words == limit
        assert int((counted.ids == tokenizer.eos_token_id).sum()) == min(limit, len(folder))
    decoded = tokenizer.decode(stream.ids[:-1].tolist())
    assert decoded.split() == source.read_text().split()[:3000]
    # each word belongs to the token that begins it
    text = "the cat  sat\non a mat"
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    owners = words_per_token(text, offsets)
    assert int(owners.sum()) == 6
    starts = [i for i, c in enumerate(text) if not c.isspace() and (i == 0 or text[i - 1].isspace())]
    owner_of = [next(t for t, (_, end) in enumerate(offsets) if end > s) for s in starts]
    assert owners.tolist() == [owner_of.count(t) for t in range(len(offsets))]
    assert all(offsets[t][0] <= s < offsets[t][1] for t, s in zip(owner_of, starts, strict=True))


def test_tokenisation_is_cached(setup, tmp_path):
    files = [setup["text"] / "childes.train"]
    first = tokenize_text(setup["tokenizer"], files, max_words=500, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("text-*.pt"))) == 1
    again = tokenize_text(setup["tokenizer"], files, max_words=500, cache_dir=tmp_path, progress=False)
    assert torch.equal(first.ids, again.ids)
    tokenize_text(setup["tokenizer"], files, max_words=400, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("text-*.pt"))) == 2  # another limit, another cache entry


def test_blocks_open_at_sentence_starts(setup):
    tokenizer = setup["tokenizer"]
    files = [setup["text"] / name for name in ("simple_wiki.train", "childes.train")]
    stream = tokenize_text(tokenizer, files, max_words=3000, progress=False)
    ids, starts = stream.ids.tolist(), sentence_starts(stream.ids, tokenizer)
    # against a reading of the decoded text: a word after . ! ? (closing quotes allowed) or a file's end opens a
    # sentence
    end = r"[.!?][\"')\]]*"
    assert len(starts) == 1 + len(re.findall(rf"(?:{end} |</s> ?)(?=\S)", tokenizer.decode(ids)))
    assert sum(ids[start - 1] == tokenizer.eos_token_id for start in starts[1:].tolist()) == 1
    for start in starts[1:].tolist():
        before, through = tokenizer.decode(ids[:start]), tokenizer.decode(ids[: start + 1])
        assert before.endswith("</s>") or (re.search(end + "$", before) and through[len(before)] == " ")

    body = 120  # tokens; the test tokenizer has 400, so a sentence takes ~50
    blocks, words = pack(stream, image_prefix(tokenizer, 1), body + 2, starts)
    begins = block_begins(starts, len(ids), body).tolist()
    assert blocks.shape == (len(begins), body + 2) and (blocks[:, 0] == tokenizer.bos_token_id).all()
    assert all(row[2:].tolist() == ids[b : b + body] for row, b in zip(blocks, begins, strict=True))
    assert words.tolist() == [int(stream.words[b : b + body].sum()) for b in begins]
    points = set(starts.tolist())
    assert begins[0] == 0 and len(ids) - (begins[-1] + body) < body
    for first, second in itertools.pairwise(begins):
        assert second in points or second == first + body  # a sentence start, or an over-long sentence going on
        assert first < second <= first + body  # nothing skipped
        assert not points & set(range(second + 1, first + body + 1))  # the cut sentence opens the next block
    assert sum(b not in points for b in begins) < len(begins) / 10


def test_sentence_ends_with_quotes_and_brackets(tmp_path):
    corpus = tmp_path / "generated.train"
    corpus.write_text(" ".join(['He said "Go." Then she left. (It was late.) Was it? Yes!'] * 100), encoding="utf-8")
    tokenizer = train_tokenizer([corpus], 400, progress=False)
    stream = tokenize_text(tokenizer, [corpus], progress=False)
    openings = [
        tokenizer.decode(stream.ids[start : start + 4].tolist(), skip_special_tokens=True).split()[0]
        for start in sentence_starts(stream.ids, tokenizer).tolist()
    ]
    assert openings == ["He", "Then", "(It", "Was", "Yes!"] * 100


def test_sentence_blocks_warn_about_a_tokenizer_without_the_leading_space(setup, tmp_path, caplog):
    sample = tmp_path / "sample.train"
    sample.write_text((setup["text"] / "childes.train").read_text()[:50_000])
    plain = train_tokenizer([sample], 400, progress=False)
    plain.backend_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # as before da83d11
    cfg = config(setup, "plain", text_max_words=2000)
    black = torch.zeros(1, 32)
    for tokenizer, warned in ((setup["tokenizer"], False), (plain, True)):
        caplog.clear()
        with caplog.at_level("WARNING", logger="babymerge.training.data"):
            build_dataset(cfg, tokenizer, 1, black)
        assert any("adds no space before a string's first word" in r.message for r in caplog.records) == warned


def test_blocks_and_batches_follow_the_paper_layout(setup):
    tokenizer = setup["tokenizer"]
    stream = tokenize_text(tokenizer, [setup["text"] / "childes.train"], max_words=800, progress=False)
    blocks, words = pack(stream, image_prefix(tokenizer, 1), 32)
    body = 32 - 2
    assert blocks.shape == (len(stream.ids) // body, 32)
    assert (blocks[:, 0] == tokenizer.bos_token_id).all() and (blocks[:, 1] == 3).all()
    assert torch.equal(blocks[:, 2:].flatten(), stream.ids[: blocks.shape[0] * body])
    assert int(words.sum()) == int(stream.words[: blocks.shape[0] * body].sum())

    features = torch.arange(3 * 4, dtype=torch.float).view(3, 1, 4)
    black = torch.full((1, 4), -1.0)
    caption = torch.tensor(tokenizer("A dog runs .")["input_ids"] + [tokenizer.eos_token_id])
    batch = Collator(0, 3, features, black)(
        [
            {"input_ids": blocks[0], "num_words": 7, "image_row": -1},
            {"input_ids": caption, "num_words": 4, "image_row": 2},
        ]
    )
    assert batch["input_ids"].shape == (2, 32)
    assert batch["labels"][1, len(caption) :].eq(-100).all() and batch["attention_mask"][1, len(caption) :].eq(0).all()
    assert batch["labels"][:, 1].eq(-100).all()  # image tokens carry no loss
    assert torch.equal(batch["labels"][0, 2:], blocks[0, 2:].long())
    assert torch.equal(batch["image_features"][0], black) and torch.equal(batch["image_features"][1], features[2])
    assert batch["num_words"].tolist() == [7, 4]


def test_mix_by_words_keeps_the_ratio_and_the_seed():
    text_words, caption_words = torch.full((1000,), 50), torch.randint(5, 15, (300,))
    keep_text, keep_caps = mix_by_words(text_words, caption_words, 0.5, seed=1)
    assert len(keep_caps) == 300
    assert abs(int(text_words[keep_text].sum()) - int(caption_words.sum())) <= 50
    assert torch.equal(keep_text, mix_by_words(text_words, caption_words, 0.5, seed=1)[0])
    assert not torch.equal(keep_text, mix_by_words(text_words, caption_words, 0.5, seed=2)[0])
    keep_text, keep_caps = mix_by_words(text_words, caption_words, 0.95, seed=1)
    assert len(keep_text) == 1000 and abs(int(caption_words[keep_caps].sum()) - 50000 * 0.05 / 0.95) <= 15


class Interrupt(TrainerCallback):
    """Stops the run with an error right after the Trainer checkpoint of ``step``, as a crash would."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("simulated crash")


def test_text_run_loss_falls_writes_milestones_and_resumes_exactly(setup):
    whole = train(config(setup, "whole", max_steps=30))
    rows = loss_log(whole)
    assert [r["step"] for r in rows] == list(range(2, 31, 2))
    assert rows[-1]["loss"] < rows[0]["loss"] - 1.0
    final = json.loads((whole / "checkpoints" / "final" / "babymerge_training.json").read_text())
    assert final["words_seen"] == rows[-1]["words_seen"] and final["global_step"] == 30
    reached = {milestone_name(m) for m in milestones(1000) if m <= final["words_seen"]}
    assert {p.name for p in (whole / "checkpoints").iterdir()} == reached | {"final"}
    for name in reached:
        meta = json.loads((whole / "checkpoints" / name / "babymerge_training.json").read_text())
        milestone = meta["milestone"]
        assert milestone_name(milestone) == name and milestone <= meta["words_seen"]
    assert (whole / "loss.png").stat().st_size > 0

    broken = config(setup, "resumed", max_steps=30)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(broken, callbacks=[Interrupt(20)])
    assert not (broken.out / "checkpoints" / "final").exists()
    train(broken)
    assert loss_log(broken.out) == rows
    a = load_file(whole / "checkpoints" / "final" / "model.safetensors")
    b = load_file(broken.out / "checkpoints" / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    init = load_file(setup["init"] / "model.safetensors")
    assert not torch.equal(a["lm_head.weight"], init["lm_head.weight"])


def test_milestone_folder_loads_alone_in_a_fresh_process(setup):
    out = train(config(setup, "fresh", max_steps=10, save_final=False))
    folder = sorted((out / "checkpoints").iterdir())[0]
    code = (
        "import sys, torch; sys.modules['babymerge'] = None\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(folder)!r}, trust_remote_code=True)\n"
        f"t = AutoTokenizer.from_pretrained({str(folder)!r}, trust_remote_code=True)\n"
        "ids = t('the dog', return_tensors='pt')['input_ids']\n"
        "print(ids.tolist()[0][:2], float(m(ids).logits.sum()))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("]")[0] == "[1, 3"
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = setup["tokenizer"]("the dog", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = float(model(ids).logits.sum())
    assert float(result.stdout.split()[-1]) == pytest.approx(expected, rel=1e-4)


def test_multimodal_run_mixes_captions_and_learns(setup):
    cfg = config(
        setup, "multimodal", mode="multimodal", captions=setup["captions"], features=setup["features"], epochs=2
    )
    dataset, collator = build_dataset(cfg, setup["tokenizer"], 1, FeatureFile.load(cfg.features).black)
    images = FeatureFile.load(cfg.features)
    captions = [c for image, c in read_captions(cfg.captions) if image in images.index]
    assert len(captions) == 5 * NUM_IMAGES and len(dataset.captions) == len(captions)
    caption_words = sum(len(c.split()) for c in captions)
    assert int(dataset.caption_words.sum()) == caption_words
    assert abs(int(dataset.block_words.sum()) - caption_words) <= int(dataset.block_words.max())
    packed = [dataset[i] for i in range(len(dataset.blocks), len(dataset))]
    row = max(packed, key=lambda r: len(r["lengths"]))  # several captions end to end, each with its image
    assert len(row["lengths"]) > 1 and sum(row["lengths"]) == len(row["input_ids"]) <= cfg.max_length
    ends = torch.tensor(row["lengths"]).cumsum(0) - 1
    assert row["input_ids"][ends].eq(setup["tokenizer"].eos_token_id).all() and min(row["image_rows"]) >= 0
    batch = collator([dataset[0], row])
    assert torch.equal(batch["image_features"][1:], images.features[row["image_rows"]])
    unpacked, _ = build_dataset(cfg.model_copy(update={"pack_captions": False}), setup["tokenizer"], 1, images.black)
    assert "image_row" in unpacked[len(unpacked.blocks)] and len(unpacked) > len(dataset)
    assert (
        sum(unpacked[i]["num_words"] for i in range(len(unpacked)))
        == dataset.num_words
        == sum(dataset[i]["num_words"] for i in range(len(dataset)))
    )

    out = train(cfg)
    rows = loss_log(out)
    assert rows[-1]["loss"] < rows[0]["loss"] - 1.0
    meta = json.loads((out / "checkpoints" / "final" / "babymerge_training.json").read_text())
    assert meta["mode"] == "multimodal" and meta["words_seen"] == rows[-1]["words_seen"]
    speed = json.loads((out / "throughput.json").read_text())
    assert speed["words"] == meta["words_seen"] == 2 * dataset.num_words
    assert speed["tokens"] == 2 * sum(len(dataset[i]["input_ids"]) for i in range(len(dataset)))
    assert speed["padding_fraction"] == pytest.approx(1 - speed["tokens"] / speed["slots"], abs=1e-5)
    assert speed["padding_fraction"] < 0.15  # captions of 20-63 tokens here, in 64-token rows
    assert speed["words_per_s"] == pytest.approx(speed["words"] / speed["seconds"], rel=1e-3)
    assert speed["achieved_tflops"] > 0
    steady = speed["steady"]  # the rates after the first tenth of the steps (compilation and warm-up)
    seen = {row["step"]: row["words_seen"] for row in rows}
    assert steady["words"] == speed["words"] - seen[steady["after_steps"]] and 0 < steady["seconds"] < speed["seconds"]
    assert steady["words_per_s"] == pytest.approx(steady["words"] / steady["seconds"], rel=1e-3)
    assert speed["settings"] == {  # the speed settings as the run used them, auto resolved
        "attn_implementation": "sdpa",
        "precision": "fp32",
        "optim": "adamw_torch_fused",
        "torch_compile": False,
        "batch_size": 8,
        "gradient_accumulation_steps": 1,
        "pack_captions": True,
    }


def test_attention_implementation_is_chosen_for_the_device_or_refused(setup, monkeypatch):
    from babymerge.training import run

    assert run.attention(config(setup, "attn")) == "sdpa"  # auto on a CPU
    assert run.attention(config(setup, "attn", attn_implementation="eager")) == "eager"
    for name in ("flex_attention", "flash_attention_2"):
        with pytest.raises(BabymergeError, match=rf"attn_implementation '{name}': .*device cpu"):
            run.attention(config(setup, "attn", attn_implementation=name))
    # a GPU with flash-attn installed, as the choice sees it: flash attention in half precision only
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr("transformers.utils.is_flash_attn_2_available", lambda: True)
    gpu = {"device": "cuda"}
    assert run.attention(config(setup, "attn", **gpu)) == "sdpa"  # float32: flash-attn would refuse it
    assert run.attention(config(setup, "attn", **gpu, trainer_args={"bf16": True})) == "flash_attention_2"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # accelerate launch --mixed_precision bf16
    assert run.attention(config(setup, "attn", **gpu)) == "flash_attention_2"
    assert run.precision(config(setup, "attn")) == "bf16"
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    with pytest.raises(BabymergeError, match="'flash_attention_2': trains in bf16 or fp16 only"):
        run.attention(config(setup, "attn", **gpu, attn_implementation="flash_attention_2"))


@pytest.mark.slow
def test_compiled_training_learns_what_eager_training_learns(setup):
    """``trainer_args: {torch_compile: true}`` (the GPU speed setting) on packed multimodal rows: the same
    losses step by step as the uncompiled run, and the run records that it compiled."""
    from torch._dynamo.utils import counters

    fields = dict(mode="multimodal", captions=setup["captions"], features=setup["features"], max_steps=6)
    counters.clear()
    eager = train(config(setup, "eager", **fields))
    assert not counters["stats"]["unique_graphs"]  # nothing compiled
    compiled = train(config(setup, "compiled", **fields, trainer_args={"torch_compile": True}))
    assert counters["stats"]["unique_graphs"] > 0  # dynamo captured the model's graphs
    losses = [[row["loss"] for row in loss_log(out)] for out in (eager, compiled)]
    assert len(losses[0]) == 3 and losses[1] == pytest.approx(losses[0], rel=1e-4)
    assert json.loads((compiled / "throughput.json").read_text())["settings"]["torch_compile"] is True
    assert json.loads((eager / "throughput.json").read_text())["settings"]["torch_compile"] is False


def test_cli_trains_from_yaml_with_flag_overrides_and_plots_both_runs(setup, tmp_path, capsys):
    cfg = config(setup, "cli-yaml", max_steps=4)
    yaml_file = tmp_path / "train.yaml"
    yaml_file.write_text(cfg.to_yaml())
    assert main(["train", "--config", str(yaml_file), "--max-steps", "6", "--quiet"]) == 0
    rows = loss_log(cfg.out)
    assert rows[-1]["step"] == 6
    other = cfg.out.parent / "cli-flags"
    args = ["train", "--mode", "text", "--init", str(setup["init"]), "--text", str(setup["text"]), "--out", str(other)]
    args += ["--text-max-words", "3000", "--max-length", "64", "--batch-size", "4", "--max-steps", "4", "--quiet"]
    args += ["--logging-steps", "2", "--cache-dir", str(setup["root"] / "cache")]
    assert main(args) == 0
    figure = tmp_path / "loss.png"
    assert main(["plot-loss", str(cfg.out), str(other), "--out", str(figure)]) == 0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_errors_name_the_problem(setup, tmp_path, capsys):
    base = ["train", "--init", str(setup["init"]), "--text", str(setup["text"]), "--out", str(tmp_path / "o")]
    assert main([*base, "--mode", "multimodal"]) == 2
    assert "needs both captions and features" in capsys.readouterr().err
    assert main([*base, "--mode", "text", "--batch-size", "0"]) == 2
    assert "batch_size" in capsys.readouterr().err
    missing = [
        "train",
        "--mode",
        "text",
        "--init",
        str(tmp_path),
        "--text",
        str(setup["text"]),
        "--out",
        str(tmp_path / "p"),
    ]
    assert main(missing) == 2
    assert "no config.json" in capsys.readouterr().err
    flex = [*base, "--mode", "text", "--attn-implementation", "flex_attention", "--text-max-words", "500"]
    assert main(flex) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "attn_implementation 'flex_attention': torch has no flex-attention backward on CPU" in line
    (tmp_path / "o" / "trainer").mkdir(parents=True)  # an earlier run there: --restart must not move it aside
    assert main([*flex, "--restart"]) == 2 and (tmp_path / "o" / "trainer").is_dir()
    assert not list(tmp_path.glob("o.old-*"))


def test_paper_scale_configs_load_and_name_their_speed_settings():
    from babymerge.config_file import load_config

    folder = Path(__file__).resolve().parents[1] / "benchmarks" / "paper_scale"
    for name in ("text", "multimodal"):
        cfg = load_config(TrainConfig, folder / f"{name}.yaml")
        assert cfg.attn_implementation == "auto" and cfg.device == "cuda"
        assert {"bf16": True, "optim": "adamw_torch_fused", "torch_compile": True}.items() <= cfg.trainer_args.items()
