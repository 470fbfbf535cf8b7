"""A feature file's metadata, read from its safetensors header without torch, and how it must match a checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import BabymergeError


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """A feature file's metadata (backbone, pooling, grid_size ...) from its safetensors header alone: no
    tensors read, no torch imported (``babymerge eval`` checks it before any model loads)."""
    path = Path(path)
    if not path.is_file():
        raise BabymergeError(f"{path}: feature file not found (make one with `babymerge features`)")
    try:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
        return dict(header.get("__metadata__") or {})
    except (OSError, ValueError, AttributeError) as error:
        raise BabymergeError(f"{path}: not a readable safetensors feature file ({error})") from None


def mismatch(meta: dict[str, str], config: Any) -> str | None:
    """How features with metadata ``meta`` differ from those a babyllava ``config`` was built for (its
    ``vision_backbone``, ``image_pooling``, ``image_grid_size``, set by ``babymerge init --features``), in one
    line; ``None`` when they match. A backbone that either side does not record is not compared."""
    ours = {"backbone": getattr(config, "vision_backbone", None), "pooling": getattr(config, "image_pooling", "mean")}
    theirs = {"backbone": meta.get("backbone") or None, "pooling": meta.get("pooling") or "mean"}
    if ours["pooling"] == theirs["pooling"] == "grid":
        ours["grid_size"] = getattr(config, "image_grid_size", None)
        theirs["grid_size"] = int(meta["grid_size"]) if meta.get("grid_size", "").strip() else None
    differ = [k for k in ours if ours[k] != theirs[k] and (k != "backbone" or (ours[k] and theirs[k]))]
    if not differ:
        return None
    return ", ".join(f"{k} {theirs[k]!r} where the checkpoint was built for {ours[k]!r}" for k in differ)
