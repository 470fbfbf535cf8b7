"""Feature extraction in batches, resumable: each finished batch is kept until the feature file is written.

Finished batches live in ``OUT.partial/`` beside the output (``run.json`` with the settings, then one
``batch_NNNNNN.safetensors`` per batch, each written atomically). A rerun with the same settings picks them up;
the feature file is written atomically at the end and the partial folder removed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..errors import BabymergeError
from ..io import atomic_file
from .backbone import Backbone, patch_tokens
from .config import FeaturesConfig
from .images import ImageSource, black_image, load_rgb
from .pooling import Pooling, pool_patches
from .store import RANDOM_BACKBONE_WARNING, FeatureFile


def partial_dir(out: str | os.PathLike) -> Path:
    """The folder holding the finished batches of an interrupted run writing ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


@torch.inference_mode()
def image_features(
    backbone: Backbone, images: list, *, layer: int = -2, pooling: Pooling = "mean", grid_size: int | None = None
) -> tuple[torch.Tensor, str]:
    """Pooled features ``(len(images), tokens, dim)`` of PIL images, and the patch grid as ``"RxC"``."""
    pixel_values = backbone.processor(images=images, return_tensors="pt")["pixel_values"]
    patches, rows, cols = patch_tokens(backbone, pixel_values, layer)
    return pool_patches(patches, rows, cols, pooling, grid_size).cpu().contiguous(), f"{rows}x{cols}"


def _settings(backbone: Backbone, sources: list[ImageSource], **fields) -> dict:
    return {"backbone": backbone.name, **fields, "image_ids": [s.image_id for s in sources]}


def _open_partial(folder: Path, settings: dict) -> None:
    record = folder / "run.json"
    if record.is_file():
        previous = json.loads(record.read_text())
        if previous != settings and any(folder.glob("batch_*.safetensors")):
            changed = sorted(k for k in settings if previous.get(k) != settings[k])
            raise BabymergeError(
                f"{folder}: holds an interrupted run with other settings ({', '.join(changed)}); "
                "rerun with the same settings to resume, or remove the folder to start afresh"
            )
        if previous == settings:
            return
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(record) as tmp:
        tmp.write_text(json.dumps(settings, indent=1))


def extract_features(
    sources: list[ImageSource],
    out: str | os.PathLike,
    backbone: Backbone,
    *,
    pooling: Pooling = "mean",
    grid_size: int | None = None,
    batch_size: int = 32,
    layer: int = -2,
    progress: bool = True,
) -> FeatureFile:
    """Extract, pool and save features of ``sources`` (plus the black image's) to ``out``, resuming if possible."""
    if batch_size < 1:
        raise BabymergeError(f"--batch-size must be at least 1, got {batch_size}")
    if pooling != "grid":
        grid_size = None
    # The black image first: it checks backbone, layer and pooling before anything is written.
    black, black_grid = image_features(backbone, [black_image()], layer=layer, pooling=pooling, grid_size=grid_size)
    folder = partial_dir(out)
    settings = _settings(backbone, sources, layer=layer, pooling=pooling, grid_size=grid_size, batch_size=batch_size)
    _open_partial(folder, settings)
    starts = range(0, len(sources), batch_size)
    done = sum((folder / f"batch_{i:06d}.safetensors").is_file() for i in range(len(starts)))
    if done and progress:
        tqdm.write(f"resuming: {done} of {len(starts)} batches already done in {folder}")
    batches = []
    for index, start in enumerate(tqdm(starts, desc="features", unit="batch", disable=not progress)):
        file = folder / f"batch_{index:06d}.safetensors"
        chunk = sources[start : start + batch_size]
        if file.is_file():
            feats = load_file(file)["features"]
            if feats.shape[0] != len(chunk):
                raise BabymergeError(f"{file}: holds {feats.shape[0]} images, expected {len(chunk)}; remove {folder}")
        else:
            images = [load_rgb(s) for s in chunk]
            feats, _ = image_features(backbone, images, layer=layer, pooling=pooling, grid_size=grid_size)
            with atomic_file(file) as tmp:
                save_file({"features": feats}, tmp)
        batches.append(feats)
    meta = {
        "backbone": backbone.name,
        "layer": str(layer),
        "pooling": pooling,
        "grid_size": str(grid_size) if grid_size else "",
        "patch_grid": black_grid,
        "random_backbone": "true" if backbone.random else "false",
    }
    result = FeatureFile([s.image_id for s in sources], torch.cat(batches), black[0], meta)
    result.save(out)
    shutil.rmtree(folder, ignore_errors=True)
    return result


def run_features(config: FeaturesConfig) -> FeatureFile:
    """The features stage (``babymerge features``, the demo): the backbone of ``config``, the images it names,
    the feature file written (resuming); a random backbone is announced on stderr."""
    from .backbone import load_backbone, random_dinov2
    from .images import list_images

    sources = list_images(config.images)
    if config.random_backbone:
        backbone = random_dinov2(config.seed)
        backbone.model.to(config.device)
        print(f"warning: {backbone.name} instead of {config.backbone}: {RANDOM_BACKBONE_WARNING}", file=sys.stderr)
    else:
        backbone = load_backbone(config.backbone, config.device)
    return extract_features(
        sources,
        config.out,
        backbone,
        pooling=config.pooling,
        grid_size=config.grid_size,
        batch_size=config.batch_size,
        layer=config.layer,
        progress=config.progress,
    )
