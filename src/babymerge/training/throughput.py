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
    tokens (padding left out) and batch slots it trained on, their rates and the padding fraction; ``steady``
    gives the rates after the session's first steps (a tenth, at most 50), which hold torch.compile's
    compilation and other warm-up."""

    def __init__(self, out: Path, flops: int, trainer=None, settings: dict | None = None):
        self.out, self.flops, self.trainer, self.settings = out, flops, trainer, settings or {}
        self.start = 0.0
        self.first_step, self.warm_steps, self.warm = 0, 0, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()
        self.first_step = state.global_step
        self.warm_steps = min(50, (state.max_steps - state.global_step) // 10)
        self.warm = None

    def on_step_end(self, args, state, control, **kwargs):
        if self.warm is None and self.warm_steps and state.global_step - self.first_step == self.warm_steps:
            self.warm = (time.perf_counter(), self.trainer.pop_totals())

    def rates(self, counts: dict[str, int], seconds: float) -> dict:
        tokens_per_s = counts["tokens"] / seconds
        return {
            "seconds": round(seconds, 6),
            "words_per_s": round(counts["words"] / seconds, 1),
            "tokens_per_s": round(tokens_per_s, 1),
            "achieved_tflops": round(tokens_per_s * self.flops / 1e12, 4),
        }

    def on_train_end(self, args, state, control, **kwargs):
        end = time.perf_counter()
        rest = self.trainer.pop_totals()
        counts = rest if self.warm is None else {k: v + self.warm[1][k] for k, v in rest.items()}
        if not state.is_world_process_zero or not counts["slots"]:
            return
        report = {
            **counts,
            **self.rates(counts, end - self.start),
            "padding_fraction": round(1 - counts["tokens"] / counts["slots"], 5),
            "flops_per_token": self.flops,
            "device": str(args.device),
            "processes": args.world_size,
            "settings": self.settings,
        }
        if self.warm is not None and rest["slots"]:
            report["steady"] = {"after_steps": self.warm_steps, **rest, **self.rates(rest, end - self.warm[0])}
        with atomic_file(self.out / THROUGHPUT_FILE) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
