"""``babymerge diagnose``: the loss barrier along alpha and weight diagnostics of a text-only / multimodal
pair, written as one output folder (see :mod:`.report`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..formats.checkpoint import read_state
from ..io import atomic_dir, refuse_existing
from ..sweep.merge import BASE, MULTIMODAL, TEXT, read_checked
from .config import DiagnoseConfig
from .data import caption_rows, text_rows
from .loss import loss_path
from .report import write_products
from .weights import weight_rows

INTERPOLATION = "theta = alpha * text + (1 - alpha) * multimodal (mergekit's linear method, in memory)"


def load_states(config: DiagnoseConfig) -> dict[str, dict[str, torch.Tensor]]:
    """The three checkpoints' tensors in float32, after the merge checks (one tokenizer, one size, finite)."""
    folders = {TEXT: config.text_model, MULTIMODAL: config.multimodal_model, BASE: config.base}
    read_checked(list(folders.values()))
    return {role: {k: v.float() for k, v in read_state(folder).items()} for role, folder in folders.items()}


def held_out_samples(config: DiagnoseConfig, model, tokenizer) -> dict[str, Any]:
    """The fixed samples of held-out text and captions that were asked for, by source name."""
    black = model.model.black_image_features.detach().cpu()
    common = {"max_length": config.max_length, "max_tokens": config.max_tokens, "seed": config.seed}
    samples = {}
    if config.text is not None:
        samples["text"] = text_rows(
            tokenizer, config.text, num_image_tokens=black.shape[0], progress=config.progress, **common
        )
    if config.captions is not None:
        samples["captions"] = caption_rows(
            tokenizer, config.captions, config.features, black=black, progress=config.progress, **common
        )
    return samples


def measure(config: DiagnoseConfig) -> dict[str, Any]:
    """The loss path (when held-out data is given) and the weight rows, as ``diagnose.json`` holds them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import babymerge.modeling  # noqa: F401  (registers babyllava with the Auto classes)

    started = time.perf_counter()
    states = load_states(config)
    rows = weight_rows(states[TEXT], states[MULTIMODAL], states[BASE])
    seconds = {"weights": time.perf_counter() - started}
    result: dict[str, Any] = {
        "text_model": str(config.text_model.resolve()),
        "multimodal_model": str(config.multimodal_model.resolve()),
        "base": str(config.base.resolve()),
        "interpolation": INTERPOLATION,
        "alphas": config.alphas,
        "settings": config.model_dump(mode="json", include={"max_tokens", "max_length", "batch_size", "seed"}),
        "loss": {},
        "weights": rows,
    }
    started = time.perf_counter()
    if config.text is not None or config.captions is not None:
        model = AutoModelForCausalLM.from_pretrained(config.text_model, dtype=torch.float32).to(config.device)
        tokenizer = AutoTokenizer.from_pretrained(config.text_model)
        samples = held_out_samples(config, model, tokenizer)
        result["loss"] = loss_path(
            model,
            states,
            samples,
            config.alphas,
            batch_size=config.batch_size,
            device=config.device,
            progress=config.progress,
        )
    seconds["loss"] = time.perf_counter() - started
    result["seconds"] = seconds
    return result


def diagnose(config: DiagnoseConfig) -> tuple[Path, list[Path]]:
    """Diagnose the pair and publish ``config.out``; returns the folder and the files written in it.

    ``config.threads`` holds only for this call: the caller's torch thread count is restored afterwards."""
    refuse_existing(config.out)
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        result = measure(config)
    finally:
        torch.set_num_threads(threads)
    with atomic_dir(config.out) as tmp:
        written = write_products(result, tmp)
    return config.out, [config.out / path.name for path in written]
