"""Pooling patch tokens into image tokens: one mean token, a k x k grid, or all patches."""

from __future__ import annotations

import torch
from torch.nn import functional

from ..errors import BabymergeError
from .config import POOLINGS, Pooling


def pool_patches(
    patches: torch.Tensor, rows: int, cols: int, pooling: Pooling = "mean", grid_size: int | None = None
) -> torch.Tensor:
    """``(batch, rows * cols, dim)`` patch tokens -> ``(batch, tokens, dim)`` image tokens.

    ``mean``: 1 token, the mean over all patches (the paper's setting); ``grid``: ``grid_size**2`` tokens,
    adaptive average pooling of the patch grid, row-major; ``patches``: every patch token.
    """
    if patches.dim() != 3 or patches.shape[1] != rows * cols:
        raise BabymergeError(f"patch tokens have shape {tuple(patches.shape)}; expected (batch, {rows * cols}, dim)")
    if pooling == "mean":
        return patches.mean(dim=1, keepdim=True)
    if pooling == "patches":
        return patches
    if pooling == "grid":
        if not grid_size or grid_size < 1:
            raise BabymergeError("--grid-size must be a positive integer for grid pooling")
        if grid_size > min(rows, cols):
            raise BabymergeError(f"--grid-size {grid_size} is larger than the backbone's {rows}x{cols} patch grid")
        grid = patches.transpose(1, 2).reshape(patches.shape[0], patches.shape[2], rows, cols)
        pooled = functional.adaptive_avg_pool2d(grid, grid_size)
        return pooled.flatten(2).transpose(1, 2)
    raise BabymergeError(f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
