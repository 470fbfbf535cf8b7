"""Training throughput: words/s, tokens/s, padding fraction and achieved TFLOP/s, written to ``OUT/throughput.json``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback

from ..io import atomic_file

THROUGHPUT_FILE = "throughput.json"


def flops_per_token(model, context: int) -> dict[str, int]:
    """Training FLOPs per token as PaLM's model-FLOPs utilisation counts them (Chowdhery et al. 2022):
    ``6 * (N_layers + N_head) + 12 * n_layer * context * d_model``. N_layers: the decoder layers' weight matrices
    (LoRA's left out), N_head: the LM head; the embedding is a lookup and the projector runs once per image. With
    packed rows each example attends only within itself, so the attention term overstates them."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    text = base.config.text_config
    layers = sum(p.numel() for n, p in base.named_parameters() if ".layers." in n and p.dim() == 2 and "lora_" not in n)
    head = text.vocab_size * text.hidden_size
    attention = 12 * text.num_hidden_layers * context * text.hidden_size
    return {"layers": layers, "head": head, "attention": attention, "total": 6 * (layers + head) + attention}


class ThroughputCallback(TrainerCallback):
    """Times ``trainer.train()`` (data loading, logging and checkpoint writes included) and writes the words,
    tokens (padding left out) and batch slots it trained on, their rates and the padding fraction."""

    def __init__(self, out: Path, flops: int, trainer=None):
        self.out, self.flops, self.trainer = out, flops, trainer
        self.start = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        seconds = time.perf_counter() - self.start
        counts = self.trainer.pop_totals()
        if not state.is_world_process_zero or not counts["slots"]:
            return
        tokens_per_s = counts["tokens"] / seconds
        report = {
            **counts,
            "seconds": round(seconds, 3),
            "words_per_s": round(counts["words"] / seconds, 1),
            "tokens_per_s": round(tokens_per_s, 1),
            "padding_fraction": round(1 - counts["tokens"] / counts["slots"], 5),
            "flops_per_token": self.flops,
            "achieved_tflops": round(tokens_per_s * self.flops / 1e12, 4),
            "device": str(args.device),
            "processes": args.world_size,
        }
        with atomic_file(self.out / THROUGHPUT_FILE) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
