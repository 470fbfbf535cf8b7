"""Training speed settings side by side: attention kernel, fused AdamW, torch.compile, rows per step.

Each setting trains its own copy of one preset (same Llama config, same seed) on the same synthetic batches,
in one process, steps interleaved (order rotating) so that load from other jobs hits all alike, or with
``--sequential`` (a GPU to itself) one run after another, each row printed as its run ends. Two kinds of
batch: ``text`` (256-token text blocks, as ``mode: text``) and ``packed`` (the paper's 50/50 mixture of text
blocks and packed caption rows, built by babymerge's own ``TrainingRows``, ``pack_rows`` and ``Collator``, as
in ``benchmarks/packing_throughput.py``). A step is fetching and collating a batch, forward with labels under
the Trainer's bf16 autocast (on a GPU), backward, an AdamW step, zero_grad; on a GPU each step ends with a
synchronize. A setting is a comma-separated list:

- ``attn=NAME``: the transformers attention implementation (``sdpa``, ``eager``, ``flex_attention``,
  ``flash_attention_2``; ``model.set_attn_implementation``), as ``attn_implementation`` in a train config;
- ``fused``: ``torch.optim.AdamW(fused=True)``, the Trainer's default optimizer in transformers 5
  (``optim: adamw_torch_fused``); without it the unfused AdamW of ``optim: adamw_torch`` (multi-tensor on a
  GPU, one parameter at a time on a CPU);
- ``compile``: ``torch.compile(model)``, as ``trainer_args: {torch_compile: true}``;
- ``batch=N``: rows per step (default ``--batch-size``).

Reported per setting and kind: tokens/s (padding left out), words/s, TFLOP/s by the PaLM FLOPs count
(``babymerge.training.throughput.flops_per_token``, context 256) and, with ``--peak-tflops``, the share of that
peak; then each setting's tokens/s over the first setting's (the Trainer's defaults), measured side by side.

    python benchmarks/paper_scale/speed_settings.py --device cpu --preset small --batch-size 8 --steps 10
    python benchmarks/paper_scale/speed_settings.py --device cuda --preset paper --batch-size 32 --steps 40 \
        --peak-tflops 989 --sequential
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from packing_throughput import BOS, EOS, IMAGE, VOCAB, loaders, synthetic_rows  # noqa: E402

from babymerge.modeling import BabyLlavaForConditionalGeneration, make_config  # noqa: E402
from babymerge.training.throughput import flops_per_token  # noqa: E402

ATTENTION = ("sdpa", "eager", "flex_attention", "flash_attention_2", "flash_attention_3")
DEFAULT_SETTINGS = [
    "attn=sdpa,fused",
    "attn=sdpa",
    "attn=sdpa,fused,compile",
    "attn=eager,fused,compile",
    "attn=flex_attention,fused,compile",
    "attn=flash_attention_2,fused,compile",
    "attn=sdpa,fused,compile,batch=2x",
]


def parse(setting: str, batch_size: int) -> dict:
    """``attn=sdpa,fused,compile,batch=2x`` as a dict; ``batch`` is rows or a multiple of ``batch_size``."""
    found = {"attn": "sdpa", "fused": False, "compile": False, "batch": batch_size}
    for part in filter(None, setting.split(",")):
        key, _, value = part.partition("=")
        if key in ("fused", "compile") and not value:
            found[key] = True
        elif key == "attn" and value in ATTENTION:
            found["attn"] = value
        elif key == "batch" and value.removesuffix("x").isdigit():
            found["batch"] = batch_size * int(value[:-1]) if value.endswith("x") else int(value)
        else:
            raise ValueError(
                f"setting {setting!r}: unknown part {part!r} (attn={'|'.join(ATTENTION)}, fused, compile, batch=N|Kx)"
            )
    return found


def usable(attn: str, device: str) -> str | None:
    """Why ``attn`` cannot train on ``device`` here, or None."""
    if attn == "flex_attention" and device == "cpu":
        return "flex_attention has no backward on CPU (torch)"
    if attn == "flash_attention_2":
        from transformers.utils import is_flash_attn_2_available

        if device == "cpu" or not is_flash_attn_2_available():
            return "flash-attn is not installed (or no CUDA device)"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--blocks", type=int, default=512, help="text blocks (captions: as many words)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=4, help="untimed steps first (compiles, recompiles)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kinds", nargs="+", default=["text", "packed"], choices=["text", "packed"])
    parser.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS)
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak (H200: 989)")
    parser.add_argument(
        "--sequential", action="store_true", help="one run after another, each row printed when it ends (a GPU)"
    )
    args = parser.parse_args()
    try:
        specs = {setting: parse(setting, args.batch_size) for setting in args.settings}
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    config = make_config(args.preset, vocab_size=VOCAB, image_token_index=IMAGE, bos_token_id=BOS, eos_token_id=EOS)
    data = synthetic_rows(args.length, args.blocks, config.vision_feature_dim, seed=0)
    kinds = {"text": "text", "packed": "multimodal packed"}
    runs, skipped = {}, []
    for setting, spec in specs.items():
        if (why := usable(spec["attn"], device.type)) is not None:
            skipped.append(f"{setting}: {why}")
            continue
        datasets = loaders(data, args.length, spec["batch"], seed=0)
        for kind in args.kinds:
            torch.manual_seed(0)
            model = BabyLlavaForConditionalGeneration(config).to(device).train()
            model.set_attn_implementation(spec["attn"])
            runs[(setting, kind)] = {
                "model": model,
                "forward": torch.compile(model) if spec["compile"] else model,
                "optimizer": torch.optim.AdamW(model.parameters(), lr=1e-4, fused=spec["fused"] or None),
                "batches": itertools.chain.from_iterable(itertools.repeat(datasets[kinds[kind]])),
                **dict.fromkeys(("seconds", "fetch", "words", "tokens", "slots"), 0),
                "spec": spec,
            }
    flops = flops_per_token(next(iter(runs.values()))["model"], args.length)["total"]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()

    def train_step(run: dict, timed: bool) -> None:
        fetch = time.perf_counter()
        batch = next(run["batches"])
        counts = batch.pop("num_words"), batch.pop("num_tokens")
        start = time.perf_counter()
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with autocast:
            loss = run["forward"](**batch).loss
        loss.backward()
        run["optimizer"].step()
        run["optimizer"].zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if timed:
            run["seconds"] += time.perf_counter() - start
            run["fetch"] += start - fetch
            run["words"] += int(counts[0].sum())
            run["tokens"] += int(counts[1].sum())
            run["slots"] += batch["input_ids"].numel()

    first: dict[str, float] = {}

    def row(setting: str, kind: str) -> str:
        run = runs[(setting, kind)]
        rate = run["tokens"] / run["seconds"]
        first.setdefault(kind, rate)
        tflops = rate * flops / 1e12
        share = f" | {100 * tflops / args.peak_tflops:.1f}%" if args.peak_tflops else ""
        return (
            f"| {setting} | {kind} | {run['spec']['batch']} | {1 - run['tokens'] / run['slots']:.2%} | {rate:,.0f} | "
            f"{run['words'] / run['seconds']:,.0f} | {tflops:.3f}{share} | {rate / first[kind]:.3f} |"
        )

    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(
        f"device={args.device} ({name}), torch {torch.__version__}, preset={args.preset}, rows of "
        f"{args.length} tokens, {args.steps} timed steps per run after {args.warmup} untimed, "
        f"threads={args.threads}, {'one run after another' if args.sequential else 'steps interleaved'}; "
        f"FLOPs per token {flops / 1e6:.1f} M (PaLM count, context {args.length})"
    )
    peak = " | % of peak" if args.peak_tflops else ""
    print(f"| setting | batch | rows per step | padding | tokens/s | words/s | TFLOP/s{peak} | over the first |")
    print("|---|---|---|---|---|---|---|" + ("---|" if peak else "") + "---|", flush=True)
    names = list(runs)
    if args.sequential:  # each row as soon as its run ends (a GPU to itself: nothing to share the load with)
        for key in names:
            for step in range(args.warmup + args.steps):
                train_step(runs[key], step >= args.warmup)
            print(row(*key), flush=True)
            runs[key].update(model=None, forward=None, optimizer=None)
    else:
        for step in range(args.warmup + args.steps):
            for key in names[step % len(names) :] + names[: step % len(names)]:
                train_step(runs[key], step >= args.warmup)
        for key in names:
            print(row(*key))
    print(
        "Seconds per step: the step itself (timed above); fetching and collating its batch (main process, "
        "not timed above: the Trainer's data-loader workers overlap it)"
    )
    for (setting, kind), run in runs.items():
        step, fetch = run["seconds"] / args.steps, run["fetch"] / args.steps
        print(f"  {setting} / {kind}: {step:.4f} s step, {fetch:.4f} s batch")
    for setting in dict.fromkeys(s for s, _ in runs):
        if (setting, "text") in runs and (setting, "packed") in runs:
            text, packed = runs[(setting, "text")], runs[(setting, "packed")]
            ratio = (packed["words"] / packed["seconds"]) / (text["words"] / text["seconds"])
            print(f"words/s packed / text, {setting}: {ratio:.3f}")
    for line in skipped:
        print(f"skipped {line}")


if __name__ == "__main__":
    main()
