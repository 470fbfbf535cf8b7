"""Feature files: pooled image features in safetensors, indexed by image id, with the black image's.

Layout of ``features.safetensors``:
- tensor ``features``: float32 ``(num_images, num_image_tokens, feature_dim)``, rows in ``image_ids`` order;
- tensor ``black``: float32 ``(num_image_tokens, feature_dim)``, the black image's features;
- metadata ``image_ids`` (JSON list of ids, the file names as given), ``backbone``, ``layer``, ``pooling``
  (``mean``, ``grid`` or ``patches``), ``grid_size``, ``random_backbone`` (``"true"`` when the backbone
  was randomly initialised, so results must say so).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import BabymergeError
from ..io import atomic_file


@dataclass
class FeatureFile:
    image_ids: list[str]
    features: torch.Tensor
    black: torch.Tensor
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.features.dim() != 3 or self.features.shape[0] != len(self.image_ids):
            raise BabymergeError(
                f"features has shape {tuple(self.features.shape)}; expected ({len(self.image_ids)}, tokens, dim)"
            )
        if tuple(self.black.shape) != tuple(self.features.shape[1:]):
            raise BabymergeError(
                f"black has shape {tuple(self.black.shape)}; expected {tuple(self.features.shape[1:])}"
            )
        self.index = {image_id: row for row, image_id in enumerate(self.image_ids)}

    @property
    def num_image_tokens(self) -> int:
        return self.features.shape[1]

    @property
    def feature_dim(self) -> int:
        return self.features.shape[2]

    def get(self, image_id: str) -> torch.Tensor:
        """``(num_image_tokens, feature_dim)`` features of one image, by id."""
        if image_id not in self.index:
            raise BabymergeError(f"image {image_id!r} is not in the feature file ({len(self.image_ids)} images)")
        return self.features[self.index[image_id]]

    def save(self, path: str | os.PathLike) -> None:
        meta = {**self.meta, "image_ids": json.dumps(self.image_ids)}
        with atomic_file(path) as tmp:
            save_file({"features": self.features.contiguous(), "black": self.black.contiguous()}, tmp, metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureFile:
        path = Path(path)
        if not path.is_file():
            raise BabymergeError(f"{path}: feature file not found (make one with `babymerge features`)")
        try:
            tensors = load_file(path)
            from safetensors import safe_open

            with safe_open(path, "pt") as handle:
                meta = dict(handle.metadata() or {})
        except (SafetensorError, OSError) as error:
            raise BabymergeError(f"{path}: not a readable safetensors feature file ({error})") from None
        missing = {"features", "black"} - set(tensors)
        if missing or "image_ids" not in meta:
            raise BabymergeError(f"{path}: missing {sorted(missing) or ['image_ids metadata']} in the feature file")
        ids = json.loads(meta.pop("image_ids"))
        return cls(ids, tensors["features"].float(), tensors["black"].float(), meta)
