"""RegMean (Jin et al. 2023; used for multimodal merging by Sung et al., arXiv 2304.14933) as a mergekit method.

For a linear layer with weights ``W_i`` (PyTorch layout ``(out, in)``) and Gram matrices ``G_i = X_i^T X_i`` of
its inputs on model ``i``'s data, the merged weight minimises ``sum_i w_i ||X_i W^T - X_i W_i^T||^2``:
``W^T = (sum_i w_i G~_i)^-1 sum_i w_i G~_i W_i^T`` where ``G~_i`` keeps the diagonal of ``G_i`` and scales the
off-diagonal entries by ``gamma``, and ``w_i`` is the model's ``weight`` (default 1: plain RegMean; equal weights
give the same merge; the sweep sets them from alpha). Tensors without a Gram matrix (embeddings, norms, biases,
buffers) get the ``w``-weighted average. Gram files are written by ``babymerge gram`` (one ``(in, in)`` float64
matrix per linear module), by default beside the checkpoint folder (``MODEL.gram.safetensors``), where the
method finds them; a per-model ``gram`` parameter names another file.

Recipe use::

    merge_method: regmean
    parameters: {gamma: 0.25}
    models:
      - model: /abs/text_model                  # reads /abs/text_model.gram.safetensors
      - model: /abs/multimodal_model
        parameters: {gram: /abs/grams/multimodal.safetensors}
"""

from typing import Annotated

import torch
from mergekit.merge_methods.base import ParameterScope, PerInputValues, TensorGroup
from mergekit.merge_methods.easy_define import merge_method
from pydantic import Field

from ..errors import BabymergeError
from .plugin import register_methods
from .statistics import GRAM

GRAM_SUFFIX = ".weight"


def gram_for(path: str, tensor_name: str) -> torch.Tensor | None:
    """The Gram matrix stored for the linear layer that owns ``tensor_name`` (``None`` when there is none)."""
    if not tensor_name.endswith(GRAM_SUFFIX):
        return None
    key = tensor_name[: -len(GRAM_SUFFIX)]
    handle, names = GRAM.open(path)
    return handle.get_tensor(key) if key in names else None


def scale_off_diagonal(gram: torch.Tensor, gamma: float) -> torch.Tensor:
    """``gamma * G + (1 - gamma) * diag(G)``: off-diagonal entries scaled by ``gamma``."""
    return gamma * gram + (1.0 - gamma) * torch.diag(torch.diagonal(gram))


def regmean_linear(
    weights: list[torch.Tensor], grams: list[torch.Tensor], gamma: float, shares: list[float] | None = None
) -> torch.Tensor:
    """Closed-form RegMean for one linear layer; ``weights`` are ``(out, in)``, ``grams`` ``(in, in)``, each
    model's Gram scaled by its share (default 1)."""
    shares = shares or [1.0] * len(grams)
    scaled = [w * scale_off_diagonal(g.double(), gamma) for g, w in zip(grams, shares, strict=True)]
    total = torch.stack(scaled).sum(0)
    rhs = torch.stack([g @ w.double().T for g, w in zip(scaled, weights, strict=True)]).sum(0)
    try:
        merged_t = torch.linalg.solve(total, rhs)
    except RuntimeError:  # singular: least squares through the pseudo-inverse
        merged_t = torch.linalg.pinv(total) @ rhs
    return merged_t.T


@merge_method(
    name="regmean",
    pretty_name="RegMean",
    reference_url="https://arxiv.org/abs/2212.09849",
)
def regmean_merge(
    group: TensorGroup,
    gram: Annotated[PerInputValues[str], ParameterScope.INPUT] = "",
    weight: Annotated[PerInputValues[float], ParameterScope.INPUT] = 1.0,
    gamma: Annotated[float, Field(ge=0.0, le=1.0)] = 0.25,
) -> torch.Tensor:
    tensors = [entry.tensor for entry in group.entries]
    first = tensors[0]
    if not first.is_floating_point():
        return first
    name = group.metadata.name or ""
    shares, paths = GRAM.weighted_inputs("regmean", group, gram, weight)
    if first.dim() == 2:
        grams = [gram_for(path, name) for path in paths]
        if all(g is not None for g in grams):
            for path, g in zip(paths, grams, strict=True):
                if tuple(g.shape) != (first.shape[1], first.shape[1]):
                    raise BabymergeError(
                        f"{path}: Gram matrix for {name} has shape {tuple(g.shape)}; "
                        f"expected ({first.shape[1]}, {first.shape[1]})"
                    )
            return regmean_linear(tensors, grams, gamma, shares).to(first.dtype)
        if any(g is not None for g in grams):
            missing = [path for path, g in zip(paths, grams, strict=True) if g is None]
            raise BabymergeError(f"{name}: no Gram matrix in {', '.join(missing)} (other models have one)")
    total = sum(shares)
    return sum(w / total * t.double() for w, t in zip(shares, tensors, strict=True)).to(first.dtype)


regmean_merge.check_recipe = GRAM.check_recipe  # called by the guarded merge's recipe check, before any work

# Imported before mergekit, this module's own mergekit imports fire the start-up hook while it is half
# initialised; register here once complete.
register_methods()

__all__ = ["regmean_linear", "regmean_merge", "scale_off_diagonal"]
