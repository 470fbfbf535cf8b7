"""Input Gram matrices of every linear layer, for RegMean (``babymerge gram``).

For each ``nn.Linear`` of a babyllava model, ``G = X^T X / n`` over the ``n`` input rows it sees on a small
sample: the text-and-language-model layers over non-padding tokens, the projector over image rows. Text
samples carry the black image (as in training), caption samples their image's features. The file is
safetensors: one float64 ``(in, in)`` matrix per linear module, keyed by module name
(``model.language_model.layers.0.self_attn.q_proj``), with metadata ``model``, ``samples`` and ``rows``; by
default it is written beside the checkpoint folder (``MODEL.gram.safetensors``), where ``regmean`` and the sweep
look for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from ..errors import BabymergeError
from ..io import atomic_file


class GramAccumulator:
    """Forward hooks that add ``X^T X`` of each linear layer's input (rows selected by the current mask)."""

    def __init__(self, model: nn.Module):
        self.sums: dict[str, torch.Tensor] = {}
        self.rows: dict[str, int] = {}
        self.mask: torch.Tensor | None = None
        self.handles = [
            module.register_forward_hook(self._hook(name))
            for name, module in model.named_modules()
            if isinstance(module, nn.Linear)
        ]

    def _hook(self, name: str):
        def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
            x = inputs[0].detach()
            if self.mask is not None and x.dim() == 3 and tuple(x.shape[:2]) == tuple(self.mask.shape):
                x = x[self.mask]
            x = x.reshape(-1, x.shape[-1]).double()
            gram = x.T @ x
            self.sums[name] = self.sums[name] + gram if name in self.sums else gram
            self.rows[name] = self.rows.get(name, 0) + x.shape[0]

        return hook

    def close(self) -> dict[str, torch.Tensor]:
        for handle in self.handles:
            handle.remove()
        return {name: (total / max(self.rows[name], 1)).contiguous() for name, total in self.sums.items()}


@torch.no_grad()
def compute_grams(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    image_features: torch.Tensor | None = None,
    *,
    batch_size: int = 16,
    max_length: int = 128,
    progress: bool = True,
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Gram matrices of every linear layer on ``texts`` (each with ``image_features[i]`` or the black image)."""
    if not texts:
        raise BabymergeError("gram: no samples (give --text and/or --captions with --features)")
    model.eval()
    acc = GramAccumulator(model)
    try:
        for start in tqdm(range(0, len(texts), batch_size), desc="gram", disable=not progress):
            batch = tokenizer(
                texts[start : start + batch_size],
                add_special_tokens=True,
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            acc.mask = batch["attention_mask"].bool()
            feats = None if image_features is None else image_features[start : start + batch_size]
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], image_features=feats)
    finally:
        grams = acc.close()
    return grams, acc.rows


def read_text_sample(path: Path, limit: int) -> list[str]:
    """The first ``limit`` non-empty lines of a text file."""
    if not path.is_file():
        raise BabymergeError(f"{path}: text file not found")
    lines: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                lines.append(line.strip())
                if len(lines) >= limit:
                    break
    if not lines:
        raise BabymergeError(f"{path}: no text lines")
    return lines


def read_sources(
    command: str,
    *,
    text: str | os.PathLike | None = None,
    captions: str | os.PathLike | None = None,
    features: str | os.PathLike | None = None,
    max_samples: int = 256,
) -> list[tuple[list[str], torch.Tensor | None]]:
    """The samples of ``babymerge gram`` / ``fisher``: text lines (features ``None``: the black image) and/or
    captions with their images' features, at most ``max_samples`` of each."""
    if (captions is None) != (features is None):
        raise BabymergeError(f"{command}: --captions and --features go together")
    sources: list[tuple[list[str], torch.Tensor | None]] = []
    if text is not None:
        sources.append((read_text_sample(Path(text), max_samples), None))
    if captions is not None:
        from ..features.store import FeatureFile
        from ..formats.captions import read_captions
        from ..training.data import join_features

        feature_file = FeatureFile.load(features)
        pairs = read_captions(captions)[:max_samples]
        texts, idx = join_features(pairs, feature_file, Path(captions))
        sources.append((texts, feature_file.features[idx]))
    if not sources:
        raise BabymergeError(f"{command}: give --text and/or --captions with --features")
    return sources


def load_for_statistics(model_dir: str | os.PathLike):
    """The float32 model and tokenizer that ``gram`` and ``fisher`` measure; a missing folder (or a Hub name
    while offline) is one line, never a download attempt (``model_source.resolve``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import babymerge.modeling  # noqa: F401  (registers babyllava with the Auto classes)

    from ..model_source import resolve

    name = resolve(str(model_dir), "model")
    return AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32), AutoTokenizer.from_pretrained(name)


def gram_file(
    model_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    text: str | os.PathLike | None = None,
    captions: str | os.PathLike | None = None,
    features: str | os.PathLike | None = None,
    max_samples: int = 256,
    batch_size: int = 16,
    max_length: int = 128,
) -> Path:
    """Compute a model's Gram matrices on a text and/or image-caption sample and write them to ``out`` (default:
    beside the checkpoint folder, ``MODEL.gram.safetensors``)."""
    from .statistics import GRAM

    out = Path(out) if out is not None else GRAM.beside(model_dir)
    if out.exists():
        raise BabymergeError(f"{out}: output file exists; choose another path or remove it")
    sources = read_sources("gram", text=text, captions=captions, features=features, max_samples=max_samples)
    model, tokenizer = load_for_statistics(model_dir)
    rows: dict[str, int] = {}
    sums: dict[str, torch.Tensor] = {}
    for texts, feats in sources:
        grams, counts = compute_grams(model, tokenizer, texts, feats, batch_size=batch_size, max_length=max_length)
        for name, gram in grams.items():
            sums[name] = sums.get(name, 0) + gram * counts[name]
            rows[name] = rows.get(name, 0) + counts[name]
    result = {name: (total / rows[name]).contiguous() for name, total in sums.items()}
    meta = {
        "model": str(Path(model_dir).resolve()),
        "samples": str(sum(len(t) for t, _ in sources)),
        "rows": json.dumps(rows),
    }
    with atomic_file(out) as tmp:
        save_file(result, str(tmp), metadata=meta)
    return out
