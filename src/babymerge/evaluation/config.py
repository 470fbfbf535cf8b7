"""The evaluation stage's settings (``babymerge eval``): light, so ``--help`` imports no lm-eval."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class EvalConfig(BaseModel):
    """One lm-eval run of a babyllava checkpoint on babymerge's tasks."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use: --help stays fast

    model: str = Field(description="checkpoint folder (or Hub id)")
    tasks: str = Field(description="comma-separated tasks or groups, e.g. babylm_text_fast")
    out: Path = Field(description="folder for lm-eval's results")
    data_dir: Path | None = Field(
        None, description="folder in BabyLM's evaluation_data layout (see babymerge data; default $BABYMERGE_DATA)"
    )
    features: Path | None = Field(None, description="feature file (babymerge features) for image tasks")
    allow_feature_mismatch: bool = Field(
        False, description="use a feature file from another backbone or pooling than the checkpoint's"
    )
    batch_size: int | str = Field(32, description="lm-eval batch size (a number, auto or auto:N)")
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:1 ...")
    limit: float | None = Field(None, gt=0, description="documents per task, or a fraction below 1 (quick checks)")
    progress: bool = Field(True, description="progress bars")
    save_to_model: bool = Field(
        False, description="also write MODEL/eval_results.json (metrics only) for babymerge push"
    )
