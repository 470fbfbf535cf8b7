"""The features stage's settings (``babymerge features``): light, so ``--help`` imports no torch."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_BACKBONE = "facebook/dinov2-large"
POOLINGS = ("mean", "grid", "patches")
Pooling = Literal["mean", "grid", "patches"]


class FeaturesConfig(BaseModel):
    """Pooled vision-backbone features of a folder of images or of the images a captions file names."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use: --help stays fast

    images: Path = Field(description="a folder of images, or a captions file (CSV image,caption) naming images")
    out: Path = Field(description="feature file to write (.safetensors)")
    backbone: str = Field(DEFAULT_BACKBONE, description="Hugging Face vision model name or folder")
    pooling: Pooling = Field("mean", description="mean: 1 token; grid: k*k; patches: all")
    grid_size: int = Field(2, description="k for grid pooling")
    batch_size: int = Field(32, description="images per forward pass")
    layer: int = Field(-2, description="hidden layer to take (-2 as the paper)")
    random_backbone: bool = Field(False, description="use a tiny random DINOv2 (tests and demos only)")
    seed: int = Field(0, description="seed of the random backbone")
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:1 ...")
    progress: bool = Field(True, description="progress bars")
