"""Projected cost of the paper-scale study (two runs of ``text.yaml`` / ``multimodal.yaml``) from the model's
FLOPs per token and a measured throughput.

Training FLOPs per token as PaLM's model-FLOPs utilisation counts them (Chowdhery et al. 2022):
    6 * (N_layers + N_head) + 12 * n_layer * context * d_model
N_layers: attention and MLP weights of the decoder layers, N_head: the LM head (vocab x d_model); the input
embedding is a lookup (no FLOPs); the projector runs once per row, not per token, and is left out.

With ``--words-per-s RUN=RATE`` (words of training data per second, measured by ``gpu_run.sh``), each run's
time is also projected directly: ``words x epochs / rate``. That holds for the multimodal run too, whose
caption rows may carry padding and so cost more per word than text blocks (FLOPs per token do not see it).
``--run OUT`` reads a training run's ``OUT/throughput.json`` (written by every ``babymerge train``): its
words/s, tokens/s, padding fraction, achieved TFLOP/s and settings; the rates after its first steps
(``steady``: torch.compile's compilation left out) where it has them. The first run's tokens/s stand in for
``--measured-tokens-per-s`` when that is not given.

    python benchmarks/paper_scale/cost.py --measured-tokens-per-s 521
    python benchmarks/paper_scale/cost.py --measured-tokens-per-s 195789 --words-per-s text=134747
    python benchmarks/paper_scale/cost.py --run runs/text --run runs/multimodal
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from babymerge.modeling import BabyLlavaForConditionalGeneration, make_config
from babymerge.training.throughput import THROUGHPUT_FILE, flops_per_token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=16000)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--words", type=float, default=100e6, help="words of data per epoch")
    parser.add_argument("--epochs", type=float, default=10)
    parser.add_argument("--subwords-per-word", type=float, default=1.36, help="the paper's tokenizer")
    parser.add_argument("--measured-tokens-per-s", type=float, help="training throughput measured")
    parser.add_argument("--run", type=Path, action="append", default=[], help="a training run's folder (repeatable)")
    parser.add_argument("--measured-on", default="the measuring machine")
    parser.add_argument(
        "--words-per-s", nargs="*", default=[], metavar="RUN=RATE", help="measured training words/s of a run"
    )
    parser.add_argument("--gpu-peak-tflops", type=float, nargs="*", default=[125.0, 989.0])
    parser.add_argument("--utilisation", type=float, default=0.3, help="assumed share of the GPU's peak")
    args = parser.parse_args()
    runs = {folder: json.loads((folder / THROUGHPUT_FILE).read_text()) for folder in args.run}
    for folder, run in runs.items():
        print(
            f"{folder}: {run['words_per_s']:,.0f} words/s, {run['tokens_per_s']:,.0f} tokens/s, padding "
            f"{run['padding_fraction']:.1%}, {run['achieved_tflops']:.3f} TFLOP/s achieved ({run['device']}, "
            f"{run['processes']} process(es), {run['seconds']:,.0f} s)"
        )
        if settings := run.get("settings"):
            print("  settings: " + ", ".join(f"{k} {v}" for k, v in settings.items() if v is not None))
        if steady := run.get("steady"):
            print(
                f"  after its first {steady['after_steps']} steps: {steady['words_per_s']:,.0f} words/s, "
                f"{steady['tokens_per_s']:,.0f} tokens/s, {steady['achieved_tflops']:.3f} TFLOP/s (used below)"
            )
            run = run | steady
        for peak in args.gpu_peak_tflops:
            print(f"  {100 * run['achieved_tflops'] / peak:.1f}% of a {peak:g} TFLOP/s peak")
        args.words_per_s.append(f"{folder.name}={run['words_per_s']}")
        args.measured_tokens_per_s = args.measured_tokens_per_s or run["tokens_per_s"]
    if args.measured_tokens_per_s is None:
        parser.error("give --measured-tokens-per-s or --run")

    config = make_config("paper", vocab_size=args.vocab, image_token_index=3, bos_token_id=1, eos_token_id=2)
    model = BabyLlavaForConditionalGeneration(config)
    flops = flops_per_token(model, args.context)
    layers, head, attention, per_token = flops["layers"], flops["head"], flops["attention"], flops["total"]
    tokens = args.words * args.epochs * args.subwords_per_word * 2  # two runs: text-only and multimodal
    total = tokens * per_token
    print(f"parameters: {model.num_parameters():,} (decoder-layer matrices {layers:,}, LM head {head:,})")
    print(f"training FLOPs per token: 6 x ({layers:,} + {head:,}) + {attention:,} = {per_token / 1e6:.1f} M")
    per_run = f"{args.words:.3g} words x {args.epochs:g} epochs x {args.subwords_per_word} subwords/word"
    print(f"tokens, both runs: {per_run} x 2 = {tokens:.3g}")
    print(f"total: {total:.3g} FLOPs")
    seconds = tokens / args.measured_tokens_per_s
    achieved = args.measured_tokens_per_s * per_token / 1e12
    print(
        f"at the measured {args.measured_tokens_per_s:g} tokens/s ({achieved:.3f} TFLOP/s achieved) on "
        f"{args.measured_on}: {seconds / 3600:,.0f} h = {seconds / 86400:,.1f} days"
    )
    for peak in args.gpu_peak_tflops:
        gpu_seconds = total / (peak * 1e12 * args.utilisation)
        print(f"one GPU of {peak:g} TFLOP/s peak at {args.utilisation:.0%} of it: {gpu_seconds / 3600:.1f} GPU-hours")
    total_hours = 0.0
    for measured in args.words_per_s:
        run, _, rate = measured.partition("=")
        hours = args.words * args.epochs / float(rate) / 3600
        total_hours += hours
        print(f"{run}: {args.words:.3g} words x {args.epochs:g} epochs at {float(rate):,.0f} words/s = {hours:.1f} h")
    if len(args.words_per_s) > 1:
        print(f"all {len(args.words_per_s)} runs above, one after the other: {total_hours:.1f} h")


if __name__ == "__main__":
    main()
