"""The training run's settings: one pydantic model, written as YAML or given as ``babymerge train`` flags."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import BabymergeError

DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class TrainConfig(BaseModel):
    """One training run: a text-only or a multimodal model trained from a shared initial checkpoint.

    ``trainer_args`` passes any further ``transformers.TrainingArguments`` field through unchanged
    (``deepspeed``, ``fsdp``, ``bf16``, ``gradient_checkpointing`` ...), so the run scales out under
    ``accelerate launch`` or ``torchrun`` without code changes.
    """

    model_config = ConfigDict(extra="forbid")

    mode: Literal["text", "multimodal"]
    init: Path = Field(description="initial checkpoint folder (babymerge init)")
    text: Path = Field(description="BabyLM-format folder of .train files, or one file")
    out: Path = Field(description="output folder: checkpoints/, trainer/, loss.jsonl, loss.png")
    captions: Path | None = Field(None, description="image-caption file (CSV image,caption or TSV image#k<TAB>caption)")
    features: Path | None = Field(None, description="feature file from `babymerge features`")

    seed: int = 0
    max_length: int = Field(256, ge=8, description="tokens per packed text block and the caption cut-off")
    text_max_words: int | None = Field(None, gt=0, description="use only this many words of text, spread over files")
    text_ratio: float | None = Field(
        0.5, gt=0, lt=1, description="multimodal: share of words from text-only blocks (paper 50M/50M); null: all"
    )
    epochs: float = Field(10, gt=0)
    max_steps: int = Field(-1, description="stop after this many optimizer steps (-1: run all epochs)")
    batch_size: int = Field(32, ge=1, description="rows per device per step")
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: float = Field(0.01, ge=0, description="steps, or a fraction of all steps when below 1")
    lr_scheduler_type: str = "cosine"
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(500, ge=1, description="resumable Trainer checkpoint every this many steps")
    save_total_limit: int | None = Field(2, ge=1)
    milestone_unit: int = Field(
        1_000_000, ge=1, description="words per unit of the BabyLM milestones (1..10, 20..100, 200..1000 units)"
    )
    save_final: bool = Field(True, description="also write checkpoints/final when training ends")
    resume: bool = Field(True, description="continue from the last Trainer checkpoint in OUT/trainer when there is one")
    cache_dir: Path | None = Field(None, description="tokenisation cache (default ~/.cache/babymerge/tokens)")
    progress: bool = True

    lora: bool = Field(False, description="train a LoRA adapter instead of all weights")
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_LORA_TARGETS))
    lora_modules_to_save: list[str] = Field(
        default_factory=lambda: ["multi_modal_projector"], description="modules trained in full beside the adapter"
    )

    trainer_args: dict[str, Any] = Field(default_factory=dict, description="extra TrainingArguments fields")

    @model_validator(mode="after")
    def _check_inputs(self) -> TrainConfig:
        if self.mode == "multimodal" and (self.captions is None or self.features is None):
            raise ValueError("mode 'multimodal' needs both captions and features")
        if self.mode == "text" and (self.captions is not None or self.features is not None):
            raise ValueError("mode 'text' takes no captions or features (use mode 'multimodal')")
        reserved = {"output_dir", "seed", "data_seed", "max_steps", "num_train_epochs", "remove_unused_columns"}
        if clash := sorted(reserved & set(self.trainer_args)):
            raise ValueError(f"trainer_args may not set {clash}; use the config fields instead")
        return self

    def cache_folder(self) -> Path:
        if self.cache_dir is not None:
            return self.cache_dir
        return Path(os.environ.get("BABYMERGE_CACHE", Path.home() / ".cache" / "babymerge")) / "tokens"

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides: Any) -> TrainConfig:
        """Read a YAML config; ``overrides`` (e.g. command-line flags that were given) replace its fields."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise BabymergeError(f"{path}: cannot read the training config ({' '.join(str(error).split())})") from None
        if not isinstance(data, dict):
            raise BabymergeError(f"{path}: expected a mapping of training settings, got {type(data).__name__}")
        return cls.model_validate({**data, **overrides})
