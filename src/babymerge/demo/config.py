"""The demo's settings (``babymerge demo``, ``--config`` YAML such as benchmarks/real_data_study.yaml): light,
so ``--help`` imports no torch."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..sweep.config import DEFAULT_METHODS
from ..training.config import Preset


class DemoConfig(BaseModel):
    """Sizes and paths of a demo run; ``quick`` shrinks everything for tests (well under two minutes).

    Without ``train_text`` the demo generates its synthetic world; with it, the demo trains on that BabyLM-format
    text and the Flickr8k-format ``images_captions`` (a ``captions.txt`` beside ``images/``) and evaluates on
    ``data_dir``, a folder in BabyLM's ``evaluation_data`` layout. A YAML file of these fields is a config.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use: --help stays fast

    out: Path = Field(Path("babymerge-demo"), description="output folder")
    data_dir: Path | None = Field(None, description="evaluation data in BabyLM's evaluation_data layout (real data)")
    train_text: Path | None = Field(None, description="BabyLM-format training text (a folder of .train files)")
    images_captions: Path | None = Field(
        None, description="Flickr8k-format captions.txt (image,caption) beside an images/ folder"
    )
    quick: bool = Field(False, description="a much smaller world and grid (for tests)")
    seed: int = Field(0, description="seed of the world, the backbone, the initialisation and training")
    seeds: list[int] | None = Field(
        None,
        description="training seeds: one text-only/multimodal pair per seed (its initialisation and data order), "
        "each in OUT/seed-S/, on the data made from seed; N alone means 0..N-1",
    )
    seed_words: int | None = Field(
        None, gt=0, description="seed pre-training: one shared run of this many words before both runs"
    )
    seed_mode: Literal["text", "multimodal"] = Field("text", description="what the seed pre-training run trains on")
    preset: Preset = Field("tiny", description="model size")
    vocab_size: int | None = Field(None, ge=300, description="default 1000 (world), 8000 (real data)")
    epochs: float | None = Field(None, gt=0, description="default: 4 (world), 1 (real data or quick)")
    text_max_words: int | None = Field(
        None, gt=0, description="real data: words of BabyLM text to train on (default 1M; 20k when quick)"
    )
    text_ratio: float | None = Field(
        0.5, gt=0, lt=1, description="multimodal run: share of words from text (paper 0.5); null: all text + captions"
    )
    max_length: int = Field(64, ge=8, description="tokens per packed training block")
    pack_captions: bool = Field(
        False, description="multimodal run: several captions per row (fewer optimizer steps per epoch)"
    )
    batch_size: int = Field(32, ge=1, description="training rows per step")
    learning_rate: float = Field(2e-3, gt=0, description="peak learning rate of both runs")
    milestone_unit: int | None = Field(None, ge=1, description="words per milestone unit (default fits the data)")
    tasks: list[str] | None = Field(None, description="tasks of both sweeps (default per world / real data)")
    alphas: list[float] | None = Field(None, description="alphas of the sweep over the selected pair")
    aligned_alphas: list[float] | None = Field(None, description="alphas of the checkpoint-by-checkpoint sweep")
    methods: list[str] = Field(default_factory=lambda: list(DEFAULT_METHODS), description="mergekit methods")
    pairing: Literal["best", "final"] = Field(
        "best", description="the pair merged over alpha: the paper's selection rule, or the final checkpoints"
    )
    threads: int = Field(1, ge=1, description="torch CPU threads (1: tiny models collapse with 2 on a loaded machine)")
    workers: int = Field(
        1, ge=1, description="CPU processes: 2 trains both runs side by side and shares the sweep points"
    )
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:1 ...")
    progress: bool = Field(True, description="progress bars")

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, value: object) -> object:
        return list(range(value)) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or len(set(value)) != len(value)):
            raise ValueError(f"seeds must be distinct and at least one, got {value}")
        return value

    @model_validator(mode="after")
    def _real_data_complete(self) -> DemoConfig:
        real = {"train_text": self.train_text, "images_captions": self.images_captions, "data_dir": self.data_dir}
        if any(real.values()) and not all(real.values()):
            missing = ", ".join(f"--{k.replace('_', '-')}" for k, v in real.items() if not v)
            raise ValueError(f"real data needs --train-text, --images-captions and --data-dir; missing {missing}")
        return self

    @model_validator(mode="after")
    def _workers_on_cpu(self) -> DemoConfig:
        if self.workers > 1 and self.device != "cpu":
            raise ValueError(f"workers {self.workers} are CPU processes; with --device {self.device} give workers 1")
        return self

    @property
    def real(self) -> bool:
        return self.train_text is not None

    @property
    def max_words(self) -> int | None:
        if self.text_max_words or not self.real:
            return self.text_max_words
        return 20_000 if self.quick else 1_000_000
