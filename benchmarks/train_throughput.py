"""Training throughput of babyllava against the same language model as a plain LlamaForCausalLM.

Both models are built from one preset (same Llama config, same seed), trained on the same batches in the same
process, steps interleaved (order alternating) so that load from other jobs hits both alike. A step is
forward with labels, backward, AdamW step, zero_grad. babyllava rows start ``<s> <image>`` and carry the
black image's features through the projector, as text-only training does.

    python benchmarks/train_throughput.py --preset tiny --batch-size 32 --length 128 --steps 30
    python benchmarks/train_throughput.py --preset paper --batch-size 4 --length 128 --steps 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import LlamaForCausalLM

from babymerge.modeling import BabyLlavaForConditionalGeneration, make_config

VOCAB = 16000
IMAGE = 3


def step_time(model, optimizer, batch: dict) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads of this process) of one training step."""
    wall, cpu = time.perf_counter(), time.process_time()
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = make_config(args.preset, vocab_size=VOCAB, image_token_index=IMAGE, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    babyllava = BabyLlavaForConditionalGeneration(config).train()
    torch.manual_seed(0)
    llama = LlamaForCausalLM(config.text_config).train()
    models = {"babyllava": babyllava, "llama": llama}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()}

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, VOCAB, (args.batch_size, args.length), generator=generator)
    ids[:, 0], ids[:, 1] = 1, IMAGE
    labels = ids.masked_fill(ids == IMAGE, -100)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}

    times: dict[str, list[float]] = {name: [] for name in models}
    cpu: dict[str, list[float]] = {name: [] for name in models}
    for step in range(args.warmup + args.steps):
        order = list(models) if step % 2 == 0 else list(reversed(models))
        for name in order:
            elapsed, used = step_time(models[name], optimizers[name], batch)
            if step >= args.warmup:
                times[name].append(elapsed)
                cpu[name].append(used)

    tokens = args.batch_size * args.length
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    print(f"preset={args.preset} batch={args.batch_size}x{args.length} steps={args.steps} threads={args.threads}")
    print("| model | parameters | fastest step (s) | tokens/s (fastest) | median step (s) | median CPU s/step |")
    print("|---|---|---|---|---|---|")
    for name in models:
        best, median = min(times[name]), statistics.median(times[name])
        row = f"| {name} | {params[name]:,} | {best:.4f} | {tokens / best:,.0f} | {median:.4f} |"
        print(f"{row} {statistics.median(cpu[name]):.4f} |")
    b, a = times["babyllava"], times["llama"]
    print("step-time ratio babyllava / llama (target <= 1.2):")
    print(f"  fastest steps {min(b) / min(a):.3f}; medians {statistics.median(b) / statistics.median(a):.3f}")
    paired = statistics.median(x / y for x, y in zip(b, a, strict=True))
    cpu_ratio = statistics.median(cpu["babyllava"]) / statistics.median(cpu["llama"])
    print(f"  median of adjacent pairs {paired:.3f}; median CPU time {cpu_ratio:.3f}")
    print("step times (s):", {name: [round(t, 3) for t in values] for name, values in times.items()})


if __name__ == "__main__":
    main()
