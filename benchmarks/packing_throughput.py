"""Packed multimodal rows against one caption per padded row, and both against text-only training.

Three runs of one preset (same Llama config, same seed) in one process, steps interleaved (order rotating) so
that load from other jobs hits all alike: ``text`` (text blocks only, as ``mode: text``), ``multimodal
unpacked`` (text blocks and one caption per row, padded to the batch's longest row: the behaviour before
packing, ``--no-pack-captions``) and ``multimodal packed`` (captions packed into rows of the block length,
the default). Multimodal data follow the paper: half the words from captions of about 11 words. Rows, batches
and labels come from babymerge's own ``TrainingRows``, ``pack_rows`` and ``Collator``, shuffled as the
Trainer's sampler does; a step is fetching and collating a batch, forward with labels, backward, AdamW step.
Synthetic token ids: 1.36 subwords per word (the paper's tokenizer), 256-token blocks.

    python benchmarks/packing_throughput.py --preset small --batch-size 8 --steps 12
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from torch.utils.data import DataLoader, RandomSampler

from babymerge.modeling import BabyLlavaForConditionalGeneration, make_config
from babymerge.training.data import Collator, TrainingRows, pack_rows

VOCAB, BOS, EOS, PAD, IMAGE = 16000, 1, 2, 0, 3
SUBWORDS_PER_WORD = 1.36


def synthetic_rows(length: int, blocks: int, feature_dim: int, seed: int) -> dict:
    """Text blocks of ``length`` tokens and captions of 6-16 words holding as many words as the blocks."""
    generator = torch.Generator().manual_seed(seed)
    body = length - 2
    ids = torch.randint(4, VOCAB, (blocks, body), generator=generator)
    block_ids = torch.cat([torch.tensor([[BOS, IMAGE]] * blocks), ids], dim=1)
    block_words = torch.full((blocks,), round(body / SUBWORDS_PER_WORD))
    captions, words = [], []
    while sum(words) < int(block_words.sum()):
        count = int(torch.randint(6, 17, (), generator=generator))
        tokens = torch.randint(4, VOCAB, (round(count * SUBWORDS_PER_WORD),), generator=generator)
        captions.append(torch.cat([torch.tensor([BOS, IMAGE]), tokens, torch.tensor([EOS])]))
        words.append(count)
    features = torch.randn(len(captions), 1, feature_dim, generator=generator)
    return {
        "blocks": block_ids,
        "block_words": block_words,
        "captions": captions,
        "caption_words": torch.tensor(words),
        "images": torch.arange(len(captions)),
        "features": features,
    }


def loaders(data: dict, length: int, batch_size: int, seed: int) -> dict[str, DataLoader]:
    """The three runs' data loaders (reshuffled every epoch, as the Trainer's)."""
    black = torch.zeros(1, data["features"].shape[-1])
    caption_args = (data["captions"], data["caption_words"], data["images"])
    groups = pack_rows([len(c) for c in data["captions"]], length, seed)
    runs = {
        "text": (TrainingRows(data["blocks"], data["block_words"]), Collator(PAD, IMAGE)),
        "multimodal unpacked": (
            TrainingRows(data["blocks"], data["block_words"], *caption_args),
            Collator(PAD, IMAGE, data["features"], black),
        ),
        "multimodal packed": (
            TrainingRows(data["blocks"], data["block_words"], *caption_args, groups),
            Collator(PAD, IMAGE, data["features"], black, packed=True),
        ),
    }
    return {
        name: DataLoader(
            rows,
            batch_size=batch_size,
            sampler=RandomSampler(rows, generator=torch.Generator().manual_seed(seed)),
            collate_fn=collate,
        )
        for name, (rows, collate) in runs.items()
    }


def padding(loader: DataLoader) -> tuple[float, int, int]:
    """Padding fraction over one epoch of batches, words and rows per epoch."""
    tokens = slots = words = rows = 0
    for batch in loader:
        tokens += int(batch["num_tokens"].sum())
        slots += batch["input_ids"].numel()
        words += int(batch["num_words"].sum())
        rows += len(batch["input_ids"])
    return 1 - tokens / slots, words, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--blocks", type=int, default=64, help="text blocks (captions: as many words)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = make_config(args.preset, vocab_size=VOCAB, image_token_index=IMAGE, bos_token_id=BOS, eos_token_id=EOS)
    data = synthetic_rows(args.length, args.blocks, config.vision_feature_dim, seed=0)
    runs = loaders(data, args.length, args.batch_size, seed=0)
    models, optimizers, batches = {}, {}, {}
    for name, loader in runs.items():
        torch.manual_seed(0)
        models[name] = BabyLlavaForConditionalGeneration(config).train()
        optimizers[name] = torch.optim.AdamW(models[name].parameters(), lr=1e-4)
        batches[name] = itertools.chain.from_iterable(itertools.repeat(loader))

    seconds = dict.fromkeys(runs, 0.0)
    words, tokens, slots = dict.fromkeys(runs, 0), dict.fromkeys(runs, 0), dict.fromkeys(runs, 0)
    names = list(runs)
    for step in range(args.warmup + args.steps):
        for name in names[step % 3 :] + names[: step % 3]:
            start = time.perf_counter()
            batch = next(batches[name])
            counts = batch.pop("num_words"), batch.pop("num_tokens")
            models[name](**batch).loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            if step >= args.warmup:
                seconds[name] += time.perf_counter() - start
                words[name] += int(counts[0].sum())
                tokens[name] += int(counts[1].sum())
                slots[name] += batch["input_ids"].numel()

    print(
        f"preset={args.preset} batch={args.batch_size} rows of up to {args.length} tokens, {args.steps} timed steps "
        f"per run after {args.warmup} warm-up, threads={args.threads}; {args.blocks} text blocks "
        f"({int(data['block_words'].sum()):,} words) + {len(data['captions'])} captions "
        f"({int(data['caption_words'].sum()):,} words)"
    )
    print("| run | rows per epoch | padding fraction (one epoch) | padding (timed steps) | words/s | tokens/s |")
    print("|---|---|---|---|---|---|")
    rate = {}
    for name, loader in runs.items():
        epoch_padding, _, rows = padding(loader)
        rate[name] = words[name] / seconds[name]
        print(
            f"| {name} | {rows} | {epoch_padding:.2%} | {1 - tokens[name] / slots[name]:.2%} | {rate[name]:,.0f} | "
            f"{tokens[name] / seconds[name]:,.0f} |"
        )
    for name in ("multimodal unpacked", "multimodal packed"):
        print(f"words/s {name} / text: {rate[name] / rate['text']:.3f}")


if __name__ == "__main__":
    main()
