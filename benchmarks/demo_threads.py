"""Training-step time of the demo's models with 1 and 2 torch threads, on a machine other jobs load.

Rounds alternate the thread count inside one process (same model, same batch), so load from other jobs hits
both alike. A step is forward with labels, backward, AdamW step, zero_grad, as in ``babymerge demo``'s
training (batch 32 x 64 tokens). Prints the median and the 90th percentile of wall seconds per step and the
machine's load average before and after.

    python benchmarks/demo_threads.py --preset tiny --vocab 1000 --rounds 40
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from babymerge.modeling import BabyLlavaForConditionalGeneration, make_config

IMAGE = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--steps-per-round", type=int, default=3)
    args = parser.parse_args()

    config = make_config(args.preset, vocab_size=args.vocab, image_token_index=IMAGE, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = BabyLlavaForConditionalGeneration(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(4, args.vocab, (args.batch_size, args.length), generator=torch.Generator().manual_seed(0))
    ids[:, 0], ids[:, 1] = 1, IMAGE
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.masked_fill(ids == IMAGE, -100)}

    def step() -> float:
        start = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    load_before = os.getloadavg()
    for threads in (1, 2):  # warm-up
        torch.set_num_threads(threads)
        step()
    times: dict[int, list[float]] = {1: [], 2: []}
    for round_index in range(args.rounds):
        for threads in (1, 2) if round_index % 2 == 0 else (2, 1):
            torch.set_num_threads(threads)
            times[threads] += [step() for _ in range(args.steps_per_round)]
    load_after = os.getloadavg()
    params = sum(p.numel() for p in model.parameters())
    print(f"preset {args.preset}, {params:,} parameters, batch {args.batch_size} x {args.length} tokens")
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}")
    for threads, values in times.items():
        values.sort()
        p90 = values[int(0.9 * (len(values) - 1))]
        print(f"threads {threads}: median {statistics.median(values):.4f} s/step, p90 {p90:.4f}, max {values[-1]:.4f}")
    ratio = statistics.median(times[2]) / statistics.median(times[1])
    print(f"median step, 2 threads / 1 thread: {ratio:.2f}")


if __name__ == "__main__":
    main()
