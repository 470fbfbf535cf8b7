"""What a feature file fixes in a babyllava config: feature dim, image tokens, pooling and the black image."""

from __future__ import annotations

import os
from typing import Any

from ..errors import BabymergeError
from .pooling import POOLINGS
from .store import FeatureFile


def model_fields(features: FeatureFile, path: str | os.PathLike = "feature file") -> dict[str, Any]:
    """Config overrides and ``black_features`` for ``init_model``, checked against the file's own metadata."""
    pooling = features.meta.get("pooling", "mean")
    tokens = features.num_image_tokens
    if pooling not in POOLINGS:
        raise BabymergeError(f"{path}: metadata pooling={pooling!r}; expected one of {', '.join(POOLINGS)}")
    grid_text = features.meta.get("grid_size", "")
    grid_size = int(grid_text) if grid_text.strip() else None
    if pooling == "mean" and tokens != 1:
        raise BabymergeError(f"{path}: pooling 'mean' but {tokens} image tokens per image; expected 1")
    if pooling == "grid" and (not grid_size or grid_size**2 != tokens):
        raise BabymergeError(f"{path}: pooling 'grid' with grid_size={grid_text!r} but {tokens} image tokens per image")
    fields: dict[str, Any] = {
        "black_features": features.black,
        "image_pooling": pooling,
        "image_grid_size": grid_size if pooling == "grid" else None,
    }
    if features.meta.get("backbone"):
        fields["vision_backbone"] = features.meta["backbone"]
    return fields
