"""The diagnose stage's settings (``babymerge diagnose``): light, so ``--help`` imports no torch."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_ALPHAS = [round(0.1 * i, 1) for i in range(11)]


class DiagnoseConfig(BaseModel):
    """A text-only / multimodal pair and their shared initialisation, diagnosed on held-out data."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use: --help stays fast

    text_model: Path = Field(description="text-only checkpoint folder")
    multimodal_model: Path = Field(description="multimodal checkpoint folder")
    base: Path = Field(description="the shared initial checkpoint (task vectors are taken from it)")
    out: Path = Field(description="output folder (must not exist): diagnose.json, diagnose.md, CSV tables, PNG figures")
    text: Path | None = Field(None, description="held-out text: BabyLM-format folder of .train files, or one file")
    captions: Path | None = Field(None, description="held-out image-caption file (as train takes it); needs --features")
    features: Path | None = Field(None, description="feature file holding the held-out captions' images")
    alphas: list[float] = Field(
        default_factory=lambda: list(DEFAULT_ALPHAS), description="text-only model's share; 0 and 1 are always added"
    )
    max_tokens: int = Field(4096, ge=1, description="scored tokens in the fixed sample of each source")
    max_length: int = Field(128, ge=8, description="tokens per text block and the caption cut-off")
    batch_size: int = Field(16, ge=1, description="rows per forward pass")
    seed: int = Field(0, description="seed of the fixed sample of held-out rows")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's own choice)")
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:1 ...")
    progress: bool = Field(True, description="progress bars")

    @field_validator("alphas")
    @classmethod
    def _alphas_in_range(cls, alphas: list[float]) -> list[float]:
        bad = [a for a in alphas if not 0.0 <= a <= 1.0]
        if bad:
            raise ValueError(f"alphas must lie within [0, 1]; found {bad}")
        return sorted({round(a, 6) for a in [0.0, *alphas, 1.0]})

    @model_validator(mode="after")
    def _captions_with_features(self) -> DiagnoseConfig:
        if (self.captions is None) != (self.features is None):
            raise ValueError("--captions and --features go together")
        return self
