"""The training stage's settings (tokenizer, initial checkpoint, training run): pydantic models, written as YAML
(``--config``) or given as flags of ``babymerge tokenizer``, ``init`` and ``train``. Light: no torch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Attention = Literal["auto", "sdpa", "eager", "flex_attention", "flash_attention_2", "flash_attention_3"]
DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class TrainConfig(BaseModel):
    """One training run: a text-only or a multimodal model trained from a shared initial checkpoint.

    ``trainer_args`` passes any further ``transformers.TrainingArguments`` field through unchanged
    (``deepspeed``, ``fsdp``, ``bf16``, ``gradient_checkpointing`` ...), so the run scales out under
    ``accelerate launch`` or ``torchrun`` without code changes.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use: --help stays fast

    mode: Literal["text", "multimodal"] = Field(description="text-only or multimodal run")
    init: Path = Field(description="initial checkpoint folder (babymerge init)")
    text: Path = Field(description="BabyLM-format folder of .train files, or one file")
    out: Path = Field(description="output folder: checkpoints/, trainer/, loss.jsonl, loss.png")
    captions: Path | None = Field(None, description="image-caption file (CSV image,caption or TSV image#k<TAB>caption)")
    features: Path | None = Field(None, description="feature file from `babymerge features`")

    seed: int = Field(0, description="random seed")
    max_length: int = Field(256, ge=8, description="tokens per packed text block and the caption cut-off")
    block_start: Literal["sentence", "anywhere"] = Field(
        "sentence", description="text blocks open at a sentence start (a cut sentence opens the next one) or anywhere"
    )
    text_max_words: int | None = Field(None, gt=0, description="use only this many words of text, spread over files")
    text_ratio: float | None = Field(
        0.5, gt=0, lt=1, description="multimodal: share of words from text-only blocks (paper 50M/50M); null: all"
    )
    pack_captions: bool = Field(
        True,
        description="multimodal: several captions share each row of max_length tokens, each attending only to "
        "itself; off: one padded row per caption",
    )
    epochs: float = Field(10, gt=0, description="training epochs")
    max_steps: int = Field(-1, description="stop after this many optimizer steps (-1: run all epochs)")
    batch_size: int = Field(32, ge=1, description="rows per device per step")
    gradient_accumulation_steps: int = Field(1, ge=1, description="micro-batches per optimizer step")
    learning_rate: float = Field(5e-4, gt=0, description="peak learning rate")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    warmup_steps: float = Field(0.01, ge=0, description="steps, or a fraction of all steps when below 1")
    lr_scheduler_type: str = Field("cosine", description="transformers learning-rate schedule")
    logging_steps: int = Field(10, ge=1, description="log the loss every this many steps")
    save_steps: int = Field(500, ge=1, description="resumable Trainer checkpoint every this many steps")
    save_total_limit: int | None = Field(2, ge=1, description="resumable Trainer checkpoints kept")
    milestone_unit: int = Field(
        1_000_000, ge=1, description="words per unit of the BabyLM milestones (1..10, 20..100, 200..1000 units)"
    )
    save_final: bool = Field(True, description="writing checkpoints/final when training ends")
    reset_words: bool = Field(
        False, description="count words seen from 0, not on from the init checkpoint's own words seen"
    )
    resume: bool = Field(True, description="resuming a run found in OUT (--no-resume: the older spelling of --restart)")
    restart: bool = Field(False, description="start afresh: a run found in OUT is first moved aside to OUT.old-N")
    allow_changes: bool = Field(
        False, description="resume a run in OUT although settings changed (recorded in OUT/resume_log.jsonl)"
    )
    allow_feature_mismatch: bool = Field(
        False, description="train on a feature file from another backbone or pooling than the init's"
    )
    cache_dir: Path | None = Field(None, description="tokenisation cache (default ~/.cache/babymerge/tokens)")
    device: str = Field("cpu", description="cpu, or cuda (every process its own GPU under torchrun / accelerate)")
    attn_implementation: Attention = Field(
        "auto",
        description="attention kernel; auto: flash_attention_2 on a GPU with flash-attn installed in bf16/fp16, "
        "else sdpa (packed rows keep to their examples with every kernel)",
    )
    progress: bool = Field(True, description="progress bars")

    lora: bool = Field(False, description="train a LoRA adapter instead of all weights")
    lora_r: int = Field(8, ge=1, description="LoRA rank")
    lora_alpha: int = Field(16, ge=1, description="LoRA alpha")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout")
    lora_target_modules: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LORA_TARGETS), description="modules that get LoRA adapters"
    )
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

    def resolved(self) -> TrainConfig:
        """This config with absolute paths, so that its YAML means the same from any working folder."""
        from ..config_file import is_path_field

        paths = {
            name: getattr(self, name).expanduser().resolve()
            for name, field in type(self).model_fields.items()
            if is_path_field(field.annotation) and getattr(self, name) is not None
        }
        return self.model_copy(update=paths)

    def to_yaml(self) -> str:
        """The config as YAML, paths absolute (``babymerge train --config OUT/train_config.yaml`` works anywhere)."""
        import yaml

        return yaml.safe_dump(self.resolved().model_dump(mode="json"), sort_keys=False)


class TokenizerConfig(BaseModel):
    """The byte-level BPE tokenizer trained on BabyLM-format text (``babymerge tokenizer``)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use: --help stays fast

    text: Path = Field(description="folder of BabyLM .train files (or one file)")
    out: Path = Field(description="tokenizer folder to write")
    vocab_size: int = Field(16000, description="vocabulary size (at least 300: 256 bytes + specials)")
    num_image_tokens: int = Field(1, description="<image> tokens after <s>")
    min_frequency: int = Field(2, description="least count of a pair to merge")
    ratio_chars: int = Field(0, description="measure subwords per word on the first N characters (0: all)")
    overwrite: bool = Field(False, description="replace an existing output folder")
    progress: bool = Field(True, description="progress bars")


Preset = Literal["paper", "small", "tiny"]  # the names of modeling.presets.PRESETS (--help imports no torch)


class InitConfig(BaseModel):
    """The shared seeded initial checkpoint both runs start from and merges use as base (``babymerge init``)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use: --help stays fast

    tokenizer: Path = Field(description="tokenizer folder (from babymerge tokenizer)")
    out: Path = Field(description="checkpoint folder to write")
    preset: Preset = Field("paper", description="model size")
    seed: int = Field(0, description="seed of the random initialisation")
    features: Path | None = Field(None, description="feature file: black image, feature dim, image tokens, pooling")
    overwrite: bool = Field(False, description="replace an existing output folder")
