"""RegMean (Jin et al. 2023; used for multimodal merging by Sung et al., arXiv 2304.14933) as a mergekit method.

For a linear layer with weights ``W_i`` (PyTorch layout ``(out, in)``) and Gram matrices ``G_i = X_i^T X_i`` of
its inputs on model ``i``'s data, the merged weight minimises ``sum_i ||X_i W^T - X_i W_i^T||^2``:
``W^T = (sum_i G~_i)^-1 sum_i G~_i W_i^T`` where ``G~_i`` keeps the diagonal of ``G_i`` and scales the
off-diagonal entries by ``gamma``. Tensors without a Gram matrix (embeddings, norms, biases, buffers) are
averaged. Gram files are written by ``babymerge gram`` (one ``(in, in)`` float64 matrix per linear module).

Recipe use::

    merge_method: regmean
    parameters: {gamma: 0.25}
    models:
      - model: /abs/text_model
        parameters: {gram: /abs/grams/text.safetensors}
      - model: /abs/multimodal_model
        parameters: {gram: /abs/grams/multimodal.safetensors}
"""

from functools import lru_cache
from typing import Annotated

import torch
from mergekit.merge_methods.base import ParameterScope, PerInputValues, TensorGroup
from mergekit.merge_methods.easy_define import merge_method
from pydantic import Field
from safetensors import safe_open

from ..errors import BabymergeError
from .plugin import register_methods

GRAM_SUFFIX = ".weight"


@lru_cache(maxsize=16)
def _gram_file(path: str):
    try:
        return safe_open(path, framework="pt")
    except Exception as error:  # safetensors raises several types for missing or corrupt files
        raise BabymergeError(f"{path}: cannot read Gram file ({' '.join(str(error).split())})") from error


def gram_for(path: str, tensor_name: str) -> torch.Tensor | None:
    """The Gram matrix stored for the linear layer that owns ``tensor_name`` (``None`` when there is none)."""
    if not tensor_name.endswith(GRAM_SUFFIX):
        return None
    key = tensor_name[: -len(GRAM_SUFFIX)]
    handle = _gram_file(path)
    return handle.get_tensor(key) if key in handle.keys() else None


def scale_off_diagonal(gram: torch.Tensor, gamma: float) -> torch.Tensor:
    """``gamma * G + (1 - gamma) * diag(G)``: off-diagonal entries scaled by ``gamma``."""
    return gamma * gram + (1.0 - gamma) * torch.diag(torch.diagonal(gram))


def regmean_linear(weights: list[torch.Tensor], grams: list[torch.Tensor], gamma: float) -> torch.Tensor:
    """Closed-form RegMean for one linear layer; ``weights`` are ``(out, in)``, ``grams`` ``(in, in)``."""
    scaled = [scale_off_diagonal(g.double(), gamma) for g in grams]
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
    gram: Annotated[PerInputValues[str], ParameterScope.INPUT],
    gamma: Annotated[float, Field(ge=0.0, le=1.0)] = 0.25,
) -> torch.Tensor:
    tensors = [entry.tensor for entry in group.entries]
    first = tensors[0]
    name = group.metadata.name or ""
    if first.dim() == 2 and first.is_floating_point():
        grams = [gram_for(gram[entry.id], name) for entry in group.entries]
        if all(g is not None for g in grams):
            for entry, g in zip(group.entries, grams, strict=True):
                if tuple(g.shape) != (first.shape[1], first.shape[1]):
                    raise BabymergeError(
                        f"{gram[entry.id]}: Gram matrix for {name} has shape {tuple(g.shape)}; "
                        f"expected ({first.shape[1]}, {first.shape[1]})"
                    )
            return regmean_linear(tensors, grams, gamma).to(first.dtype)
        if any(g is not None for g in grams):
            missing = [str(gram[e.id]) for e, g in zip(group.entries, grams, strict=True) if g is None]
            raise BabymergeError(f"{name}: no Gram matrix in {', '.join(missing)} (other models have one)")
    if not first.is_floating_point():
        return first
    return torch.stack([t.double() for t in tensors]).mean(0).to(first.dtype)


# Imported before mergekit, this module's own mergekit imports fire the start-up hook while it is half
# initialised; register here once complete.
register_methods()

__all__ = ["regmean_linear", "regmean_merge", "scale_off_diagonal"]
