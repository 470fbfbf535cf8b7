"""Fisher merging (Matena & Raffel 2022, arXiv 2111.09832) as a mergekit method, and the statistics it needs.

Per parameter, ``theta = sum_i w_i F_i theta_i / sum_i w_i F_i`` where ``F_i`` is model ``i``'s diagonal Fisher
floored at ``epsilon`` (default 1e-8: where no model has information, the merge is the ``w``-weighted average)
and ``w_i`` its ``weight`` (default 1; the sweep sets it from alpha). Tensors no statistics file covers
(buffers such as ``model.black_image_features``) get the ``w``-weighted average too.

``babymerge fisher MODEL`` writes the statistics beside the checkpoint folder, in ``MODEL.fisher.safetensors``
(:func:`beside`): one float32 tensor per parameter, named as in the checkpoint, with metadata ``model``,
``data``, ``rows`` and ``tokens``. The method finds that file from each model's path; a per-model ``fisher``
parameter names another one (the in-memory sweep, whose inputs carry no path, always names it).

Recipe use::

    merge_method: fisher
    models:
      - model: /abs/text_model          # reads /abs/text_model.fisher.safetensors
      - model: /abs/multimodal_model
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import torch
from mergekit.merge_methods.base import ParameterScope, PerInputValues, TensorGroup
from mergekit.merge_methods.easy_define import merge_method
from pydantic import Field
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from ..errors import BabymergeError
from ..io import atomic_file
from .plugin import register_methods
from .statistics import FISHER

beside = FISHER.beside  # the statistics file of a checkpoint folder: ckpt/text -> ckpt/text.fisher.safetensors


def compute_fisher(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    image_features: torch.Tensor | None = None,
    *,
    max_length: int = 128,
    progress: bool = True,
) -> tuple[dict[str, torch.Tensor], int, int]:
    """Sum over rows of the squared per-row gradient of the row's log-likelihood, the rows and the tokens scored.

    Empirical Fisher: the gradient is that of ``log p`` of the row's actual next tokens (summed over the row, so
    a row is one example, as a sequence is in Matena & Raffel), never of sampled labels; image tokens are not
    scored (as in training). Per-row gradients come from one forward and backward pass per row (a batch of one):
    exact per-example gradients with no padding and the memory of a single gradient, for any transformers model
    (``torch.func.vmap`` would hold one gradient per row of the batch). Text rows get the black image, caption
    rows ``image_features[i]``. Tied parameters are stored under every name the state dict uses.
    """
    model.eval()  # no dropout: the Fisher of the model as it predicts
    names = {id(p): [] for p in model.parameters()}
    for name, param in model.named_parameters(remove_duplicate=False):
        names[id(param)].append(name)
    params = [p for p in model.parameters() if p.requires_grad]
    sums = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    image_token = model.config.image_token_index
    tokens = 0
    for i, text in enumerate(tqdm(texts, desc="fisher", disable=not progress)):
        ids = tokenizer([text], add_special_tokens=True, truncation=True, max_length=max_length, return_tensors="pt")
        ids = ids["input_ids"]
        feats = None if image_features is None else image_features[i : i + 1]
        logits = model(input_ids=ids, image_features=feats).logits[0, :-1].float()
        targets = ids[0, 1:]
        scored = targets != image_token
        if not bool(scored.any()):
            continue
        log_likelihood = -nn.functional.cross_entropy(logits[scored], targets[scored], reduction="sum")
        grads = torch.autograd.grad(log_likelihood, params, allow_unused=True)
        for total, grad in zip(sums, grads, strict=True):
            if grad is not None:
                total.add_(grad.float().square())
        tokens += int(scored.sum())
    out = {name: total for p, total in zip(params, sums, strict=True) for name in names[id(p)]}
    return out, len(texts), tokens


def fisher_file(
    model_dir: str | os.PathLike,
    *,
    text: str | os.PathLike | None = None,
    captions: str | os.PathLike | None = None,
    features: str | os.PathLike | None = None,
    max_samples: int = 256,
    max_length: int = 128,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """A checkpoint's diagonal empirical Fisher on its own kind of data (text rows; for a multimodal model also
    caption rows with their features: the mean is over the mixture's rows), written to ``beside(model_dir)``."""
    from .gram import load_for_statistics, read_sources

    out = Path(out) if out is not None else beside(model_dir)
    if out.exists():
        raise BabymergeError(f"{out}: statistics file exists; remove it to compute it again")
    sources = read_sources("fisher", text=text, captions=captions, features=features, max_samples=max_samples)
    model, tokenizer = load_for_statistics(model_dir)
    sums: dict[str, torch.Tensor] = {}
    rows = tokens = 0
    for texts, feats in sources:
        part, n, t = compute_fisher(model, tokenizer, texts, feats, max_length=max_length, progress=progress)
        for name, total in part.items():
            sums[name] = sums[name] + total if name in sums else total
        rows, tokens = rows + n, tokens + t
    result = {name: (total / rows).contiguous() for name, total in sums.items()}
    data = [str(Path(p).resolve()) for p in (text, captions, features) if p is not None]
    meta = {
        "model": str(Path(model_dir).resolve()),
        "data": json.dumps(data),
        "rows": str(rows),
        "tokens": str(tokens),
        "max_length": str(max_length),
    }
    with atomic_file(out) as tmp:
        save_file(result, str(tmp), metadata=meta)
    return out


def fisher_average(
    tensors: list[torch.Tensor], fishers: list[torch.Tensor], weights: list[float], epsilon: float
) -> torch.Tensor:
    """``sum_i w_i max(F_i, eps) theta_i / sum_i w_i max(F_i, eps)``, in float64."""
    scaled = [w * f.double().clamp_min(epsilon) for f, w in zip(fishers, weights, strict=True)]
    numerator = torch.stack([s * t.double() for s, t in zip(scaled, tensors, strict=True)]).sum(0)
    return numerator / torch.stack(scaled).sum(0)


@merge_method(name="fisher", pretty_name="Fisher merging", reference_url="https://arxiv.org/abs/2111.09832")
def fisher_merge(
    group: TensorGroup,
    fisher: Annotated[PerInputValues[str], ParameterScope.INPUT] = "",
    weight: Annotated[PerInputValues[float], ParameterScope.INPUT] = 1.0,
    epsilon: Annotated[float, Field(gt=0.0)] = 1e-8,
) -> torch.Tensor:
    tensors = [entry.tensor for entry in group.entries]
    first = tensors[0]
    if not first.is_floating_point():
        return first
    name = group.metadata.name or ""
    weights, paths = FISHER.weighted_inputs("fisher", group, fisher, weight)
    handles = [FISHER.open(path) for path in paths]  # cached: opened once per file
    present = [name in names for _, names in handles]
    if not any(present):
        fishers = [torch.ones_like(first, dtype=torch.float64)] * len(tensors)  # the weighted average
    elif not all(present):
        missing = [p for p, here in zip(paths, present, strict=True) if not here]
        raise BabymergeError(f"{missing[0]}: no Fisher statistics for tensor {name} (other models' files have them)")
    else:
        fishers = [handle.get_tensor(name) for handle, _ in handles]
        for path, f in zip(paths, fishers, strict=True):
            if f.shape != first.shape:
                raise BabymergeError(
                    f"{path}: Fisher statistics for {name} have shape {tuple(f.shape)}; expected {tuple(first.shape)}"
                )
    return fisher_average(tensors, fishers, weights, epsilon).to(first.dtype)


fisher_merge.check_recipe = FISHER.check_recipe  # called by the guarded merge's recipe check, before any work

# As regmean.py: imported before mergekit, this module fires the start-up hook half initialised; register now.
register_methods()

__all__ = ["beside", "compute_fisher", "fisher_average", "fisher_file", "fisher_merge"]
