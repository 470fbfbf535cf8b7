"""Feature files: pooled image features in safetensors, indexed by image id, with the black image's.

Layout of ``features.safetensors``:
- tensor ``features``: float32 ``(num_images, num_image_tokens, feature_dim)``, rows in ``image_ids`` order;
- tensor ``black``: float32 ``(num_image_tokens, feature_dim)``, the black image's features;
- metadata ``image_ids`` (JSON list of ids, the file names as given), ``backbone``, ``layer``, ``pooling``
  (``mean``, ``grid`` or ``patches``), ``grid_size``, ``random_backbone`` (``"true"`` when the backbone
  was randomly initialised, so results must say so).

``FeatureFile`` owns the two rules every reader shares: an image id is found as given, else by its file
name without extension (``row``); a file from a random backbone says so in one wording
(:data:`RANDOM_BACKBONE_WARNING`). ``mismatch`` says whether a file's backbone and pooling are those a
checkpoint was built for (training and evaluation refuse it otherwise).
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
from .metadata import mismatch, read_metadata  # noqa: F401  (the feature file's metadata, read without torch)

RANDOM_BACKBONE_WARNING = (
    "image features from a RANDOMLY INITIALISED backbone (random_backbone=true): they carry no visual meaning, "
    "so image-conditioned results measure the pipeline, not vision"
)


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
        self._by_stem = {Path(image_id).stem: row for row, image_id in enumerate(self.image_ids)}

    @property
    def random_backbone(self) -> bool:
        """Whether the features come from a randomly initialised backbone (metadata ``random_backbone``)."""
        return self.meta.get("random_backbone") == "true"

    def row(self, image_id: str) -> int | None:
        """The row of an image: its id as given, else its file name without extension (``None`` if absent)."""
        return self.index.get(image_id, self._by_stem.get(Path(image_id).stem))

    @property
    def num_image_tokens(self) -> int:
        return self.features.shape[1]

    @property
    def feature_dim(self) -> int:
        return self.features.shape[2]

    def get(self, image_id: str) -> torch.Tensor:
        """``(num_image_tokens, feature_dim)`` features of one image, by id (see :meth:`row`)."""
        row = self.row(image_id)
        if row is None:
            raise BabymergeError(f"image {image_id!r} is not in the feature file ({len(self.image_ids)} images)")
        return self.features[row]

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
