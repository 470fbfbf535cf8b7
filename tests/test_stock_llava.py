"""``--model babyllava`` on stock transformers LLaVA checkpoints (CLIP, SigLIP or DINOv2 tower) made in the
test: image tasks read raw images through the checkpoint's own processor; text tasks follow BabyLM's causal
rule."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from helpers import WORDS, resps, save_llava, word_tokenizer
from PIL import Image

TASK = "babylm_caption_matching"


def layout(root: Path, images: int = 4) -> Path:
    """A data folder: caption matching with raw images, BLiMP-format pairs, and Winoground without images."""
    rng = random.Random(0)
    folder = root / "extra_eval" / "caption_matching"
    (folder / "images").mkdir(parents=True)
    lines = ["image,caption"]
    for k in range(images):
        pixels = bytes(rng.randrange(256) for _ in range(40 * 30 * 3))
        Image.frombytes("RGB", (40, 30), pixels).save(folder / "images" / f"im{k}.png")
        lines += [f"im{k}.png,the {rng.choice(WORDS)} {rng.choice(WORDS)} sees a {rng.choice(WORDS)}"]
    (folder / "captions.txt").write_text("\n".join(lines) + "\n")
    blimp = root / "fast_eval" / "blimp_fast"
    blimp.mkdir(parents=True)
    pairs = [("the cat sees a dog", "the cat a sees dog"), ("a bird runs", "runs a bird")]
    blimp.joinpath("p.jsonl").write_text(
        "".join(json.dumps({"sentence_good": g, "sentence_bad": b}) + "\n" for g, b in pairs)
    )
    wino = root / "full_eval" / "winoground_filtered"
    wino.mkdir(parents=True)
    rows = [
        {"image_idx": 0, "image_key": "image_0", "caption_0": "the cat sees a dog", "caption_1": "a dog sees the cat"},
        {"image_idx": 0, "image_key": "image_1", "caption_0": "a dog sees the cat", "caption_1": "the cat sees a dog"},
    ]
    wino.joinpath("winoground.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


@pytest.fixture(scope="module", params=["clip", "siglip", "dinov2"])
def stock(request, tmp_path_factory) -> tuple[Path, Path]:
    """(a stock LLaVA folder with its processor, a data folder)."""
    root = tmp_path_factory.mktemp(f"stock_{request.param}")
    model = save_llava(root / "llava", word_tokenizer(WORDS), "llama", request.param, seed=3)
    return model, layout(root / "data")


def run(model: Path, data: Path, tasks: list[str]) -> dict:
    from lm_eval import simple_evaluate

    from babymerge.evaluation.lm import BabyLlavaLM
    from babymerge.evaluation.run import task_manager

    lm = BabyLlavaLM(pretrained=str(model), device="cpu", batch_size=3)
    return simple_evaluate(
        model=lm, tasks=tasks, task_manager=task_manager(tasks, data), log_samples=True, bootstrap_iters=0
    )


def direct_logprob(model, processor, caption: str, image: Path) -> float:
    """log P(caption | image): the processor expands ``<image>`` and prepares the image; one forward pass."""
    with Image.open(image) as raw:
        inputs = processor(text="<image>" + caption, images=raw.convert("RGB"), return_tensors="pt")
    ids = inputs["input_ids"][0]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(**inputs).logits[0].double(), dim=-1)
    image_positions = (ids == model.config.image_token_index).nonzero().flatten()
    start = int(image_positions.max()) + 1
    return sum(float(logprobs[i - 1, ids[i]]) for i in range(start, len(ids)))


def test_image_scores_equal_a_direct_computation(stock):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model_dir, data = stock
    out = run(model_dir, data, [TASK])
    model = LlavaForConditionalGeneration.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    samples = out["samples"][TASK]
    assert len(samples) == 4
    for sample in samples:
        doc = sample["doc"]
        assert Path(doc["image_file"]) == data / "extra_eval" / "caption_matching" / "images" / doc["image"]
        expected = [direct_logprob(model, processor, c, Path(doc["image_file"])) for c in doc["captions"]]
        assert resps(sample) == pytest.approx(expected, abs=1e-4)


def test_winoground_reads_its_images_folder(stock, tmp_path):
    """Winoground's image ids (``0_image_1``) name files of any extension in ``winoground_filtered/images/``."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model_dir, data = stock
    shutil.copytree(data, tmp_path / "data")
    images = tmp_path / "data" / "full_eval" / "winoground_filtered" / "images"
    images.mkdir()
    source = sorted((data / "extra_eval" / "caption_matching" / "images").iterdir())
    shutil.copy(source[0], images / "0_image_0.png")
    Image.open(source[1]).convert("RGB").save(images / "0_image_1.jpg")
    samples = run(model_dir, tmp_path / "data", ["babylm_winoground"])["samples"]["babylm_winoground"]
    model = LlavaForConditionalGeneration.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    assert [Path(s["doc"]["image_file"]).name for s in samples] == ["0_image_0.png", "0_image_1.jpg"]
    for sample in samples:
        doc = sample["doc"]
        expected = [direct_logprob(model, processor, c, Path(doc["image_file"])) for c in doc["captions"]]
        assert resps(sample) == pytest.approx(expected, abs=1e-4)


def test_shuffled_images_change_every_items_logprobs(stock, tmp_path):
    model_dir, data = stock
    shuffled = tmp_path / "data"
    shutil.copytree(data, shuffled)
    images = sorted((shuffled / "extra_eval" / "caption_matching" / "images").iterdir())
    contents = [p.read_bytes() for p in images]
    for path, content in zip(images, contents[1:] + contents[:1], strict=True):  # each file gets another's image
        path.write_bytes(content)
    before = {s["doc"]["image"]: resps(s) for s in run(model_dir, data, [TASK])["samples"][TASK]}
    after = {s["doc"]["image"]: resps(s) for s in run(model_dir, shuffled, [TASK])["samples"][TASK]}
    assert before.keys() == after.keys()
    for image in before:
        assert all(abs(a - b) > 1e-6 for a, b in zip(before[image], after[image], strict=True)), image


def test_text_tasks_follow_babylms_causal_rule(stock):
    """A whole sentence: tokenised with the tokenizer's special tokens, no image; position 0 is never scored."""
    from transformers import AutoTokenizer, LlavaForConditionalGeneration

    model_dir, data = stock
    samples = run(model_dir, data, ["babylm_blimp_fast"])["samples"]["babylm_blimp_fast"]
    model = LlavaForConditionalGeneration.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    for sample in samples:
        expected = []
        for sentence in (sample["doc"]["good"], sample["doc"]["bad"]):
            ids = torch.tensor([tokenizer(sentence, add_special_tokens=True)["input_ids"]])
            with torch.no_grad():
                logprobs = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
            expected.append(sum(float(logprobs[i - 1, ids[0, i]]) for i in range(1, ids.shape[1])))
        assert resps(sample) == pytest.approx(expected, abs=1e-4)


def test_a_features_only_task_is_refused_in_one_line(stock):
    from babymerge.errors import BabymergeError

    model_dir, data = stock
    with pytest.raises(BabymergeError) as caught:
        run(model_dir, data, ["babylm_winoground"])
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("babylm_winoground: a stock LLaVA needs the raw image '0_image_0'")
    assert str(data / "full_eval" / "winoground_filtered" / "images") in message
    assert "pre-extracted features" in message


def test_a_feature_file_is_refused_for_a_stock_llava(stock, tmp_path):
    from babymerge.errors import BabymergeError
    from babymerge.evaluation.lm import BabyLlavaLM

    model_dir, _ = stock
    with pytest.raises(BabymergeError, match=r"^features=: a stock LLaVA reads raw images through its own image"):
        BabyLlavaLM(pretrained=str(model_dir), device="cpu", features=str(tmp_path / "features.safetensors"))
