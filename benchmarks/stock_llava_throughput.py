"""Image-task throughput (items/s) of a stock transformers LLaVA: ``--model babyllava`` (batched, raw images
through the checkpoint's processor) against one item at a time as the BabyLM pipeline scores it (processor and
forward pass per caption, batch size 1), measured side by side in one process, rounds alternating.

    python benchmarks/stock_llava_throughput.py [--size tiny|small] [--items 64] [--repeats 5] [--batch-size 32]

The task is ``babylm_caption_matching_fast`` on ../shared/data/flickr8k_1k (real Flickr8k JPEGs, one caption per
image; an item is an image with its true and one other caption). The model is a random CLIP-tower +
Llama LLaVA saved with a ``LlavaProcessor`` (word-level tokenizer over the captions, ``<s>`` prepended); both
paths read the same files and their log-likelihoods are compared (largest absolute difference printed).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from babymerge.evaluation.layout import build_layout  # noqa: E402
from babymerge.evaluation.lm import BabyLlavaLM  # noqa: E402
from babymerge.evaluation.run import task_manager  # noqa: E402
from babymerge.formats.captions import read_captions  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TASK = "babylm_caption_matching_fast"
SIZES = {  # (vision: hidden, layers, image size, patch), (language model: hidden, layers)
    "tiny": ((32, 2, 64, 16), (64, 2)),
    "small": ((256, 4, 224, 32), (256, 4)),
}


def tokenizer_for(captions: Path):
    """A word-level tokenizer over the captions' words with ``<s>`` prepended and an ``<image>`` token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    words = " ".join(caption for _, caption in read_captions(captions))
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator(
        [words], trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>", "<s>", "</s>", "<image>"])
    )
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )


def save_model(folder: Path, tokenizer, size: str) -> Path:
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    (width, layers, image, patch), (lm_width, lm_layers) = SIZES[size]
    torch.manual_seed(0)
    vision = CLIPVisionConfig(
        hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers, num_attention_heads=4,
        image_size=image, patch_size=patch,
    )  # fmt: skip
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=lm_width, intermediate_size=4 * lm_width,
        num_hidden_layers=lm_layers, num_attention_heads=4, num_key_value_heads=4,
    )  # fmt: skip
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids("<image>")
    )
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": image}, crop_size={"height": image, "width": image}),
        tokenizer=tokenizer,
        patch_size=patch,
        num_additional_image_tokens=1,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
    )
    processor.save_pretrained(folder)
    return folder


def one_at_a_time(model, processor, instances) -> list[float]:
    """BabyLM's way: per caption, the processor on ``<image>`` + caption and its image, one forward pass."""
    out = []
    with torch.no_grad():
        for instance in instances:
            with Image.open(instance.doc["image_file"]) as raw:
                inputs = processor(text="<image>" + instance.args[1], images=raw.convert("RGB"), return_tensors="pt")
            ids = inputs["input_ids"][0]
            logprobs = torch.log_softmax(model(**inputs).logits[0].float(), dim=-1)
            start = int((ids == model.config.image_token_index).nonzero().max()) + 1
            out.append(float(logprobs[torch.arange(start - 1, len(ids) - 1), ids[start:]].sum()))
    return out


def batched(lm: BabyLlavaLM, instances) -> list[float]:
    lm._splits.clear()  # cold, as one lm_eval run: no tokenisation, plan or image rows kept
    lm._plans.clear()
    lm._files.clear()
    return [answer[0] for answer in lm.loglikelihood(instances, disable_tqdm=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        build_layout([SHARED], data)
        folder = save_model(Path(tmp) / "llava", tokenizer_for(SHARED / "flickr8k_1k" / "captions.txt"), args.size)
        task = task_manager([TASK], data).load([TASK])["tasks"][TASK]
        task.build_all_requests(limit=args.items, rank=0, world_size=1)
        instances = task.instances
        lm = BabyLlavaLM(pretrained=str(folder), device="cpu", batch_size=args.batch_size)
        model = LlavaForConditionalGeneration.from_pretrained(folder).eval()
        processor = AutoProcessor.from_pretrained(folder)
        print(
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads; "
            f"load average {os.getloadavg()[0]:.2f}; size {args.size}, {lm.image_tokens} image tokens, "
            f"{args.items} items ({len(instances)} requests), batch {args.batch_size}"
        )
        paths = {
            "batched": lambda: batched(lm, instances),
            "one at a time": lambda: one_at_a_time(model, processor, instances),
        }
        rates: dict[str, list[float]] = {name: [] for name in paths}
        results = {}
        for _ in range(args.repeats):
            for name, score in paths.items():
                start = time.perf_counter()
                results[name] = score()
                rates[name].append(args.items / (time.perf_counter() - start))
        gap = max(abs(a - b) for a, b in zip(results["batched"], results["one at a time"], strict=True))
        print(f"largest |log-likelihood difference|: {gap:.2e}; load average at the end {os.getloadavg()[0]:.2f}")
        print("| path | items/s (median) | items/s (best) | rounds |\n|---|---|---|---|")
        for name, values in rates.items():
            rounds = ", ".join(f"{v:.1f}" for v in values)
            print(f"| {name} | {statistics.median(values):.1f} | {max(values):.1f} | {rounds} |")
        ratios = [b / o for b, o in zip(rates["batched"], rates["one at a time"], strict=True)]
        listed = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"per-round ratio batched / one at a time: {listed}; median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
