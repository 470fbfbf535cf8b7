"""The sweep's settings (``babymerge sweep``, the demo's two sweeps): light, so ``--help`` imports no torch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..diagnose.config import DiagnoseConfig

if TYPE_CHECKING:
    from .merge import MergeSpec

DEFAULT_ALPHAS = [round(0.1 * i, 1) for i in range(11)]  # holds the paper's 0.3, 0.5 and 0.8
DEFAULT_METHODS = ["linear", "task_arithmetic", "ties"]
_DIAGNOSE = DiagnoseConfig.model_fields  # the diagnose stage's fields: the sweep's diagnose_* take their defaults


def _diagnose_field(name: str, **constraints: Any) -> Any:
    field = _DIAGNOSE[name]
    description = field.description.replace("--features", "--diagnose-features")
    return Field(field.default, description=f"diagnostics: {description}", **constraints)


class SweepConfig(BaseModel):
    """What to sweep: two checkpoint series (or models), methods, alphas, tasks, and where results go."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use: --help stays fast

    text: Path = Field(description="text-only checkpoint, or a training run / folder of milestone checkpoints")
    multimodal: Path = Field(description="multimodal checkpoint, or a series as for text")
    base: Path | None = Field(None, description="the shared initial checkpoint (task_arithmetic, ties, ...)")
    methods: list[str] = Field(default_factory=lambda: list(DEFAULT_METHODS), description="mergekit methods")
    method_parameters: dict[str, dict[str, Any]] = Field(default_factory=dict, description="extra mergekit params")
    alphas: list[float] = Field(default_factory=lambda: list(DEFAULT_ALPHAS), description="text-only model's share")
    tasks: list[str] = Field(default_factory=lambda: ["babylm_blimp_fast"], description="lm-eval task names")
    pairing: list[Literal["best", "aligned", "final"]] = Field(
        default_factory=lambda: ["best"],
        description="best: the paper's selection rule; aligned: checkpoint by checkpoint; final: last of each",
    )
    select_text_by: str = Field("babylm_blimp_fast", description="task that picks the best text-only checkpoint")
    select_multimodal_by: str = Field("babylm_winoground", description="task that picks the best multimodal one")
    store: Path = Field(
        description="results store (JSONL), shared by every process of the sweep (default OUT/results.jsonl)"
    )
    data_dir: Path | None = Field(None, description="evaluation data in BabyLM's evaluation_data layout")
    features: Path | None = Field(None, description="feature file for image tasks (babymerge features)")
    limit: int | None = Field(None, gt=0, description="documents per task (for quick looks)")
    seed: int = Field(0, description="seed of randomised methods (dare_*, della*): a point merges the same each time")
    batch_size: int = Field(32, ge=1, description="evaluation batch size")
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:1 ...")
    diagnose: bool = Field(
        False,
        description="write babymerge diagnose's products for every pair merged (OUT/diagnostics/<pair>/, needs base) "
        "and a summary beside the sweep table (OUT/diagnostics.md, .csv); pairs already diagnosed are kept",
    )
    diagnose_text: Path | None = _diagnose_field("text")
    diagnose_captions: Path | None = _diagnose_field("captions")
    diagnose_features: Path | None = _diagnose_field("features")
    diagnose_max_tokens: int = _diagnose_field("max_tokens", ge=1)
    diagnose_max_length: int = _diagnose_field("max_length", ge=8)

    @field_validator("alphas")
    @classmethod
    def _alphas_in_range(cls, alphas: list[float]) -> list[float]:
        bad = [a for a in alphas if not 0.0 <= a <= 1.0]
        if bad or not alphas:
            raise ValueError(f"alphas must be a non-empty list within [0, 1]; found {bad or alphas}")
        return sorted({round(a, 6) for a in alphas})

    @model_validator(mode="after")
    def _diagnose_inputs(self) -> SweepConfig:
        if self.diagnose and self.base is None:
            raise ValueError("diagnose needs base: the shared initial checkpoint the task vectors are taken from")
        if (self.diagnose_captions is None) != (self.diagnose_features is None):
            raise ValueError("diagnose_captions and diagnose_features go together")
        return self

    def specs(self) -> list[MergeSpec]:
        from .merge import MergeSpec

        return [
            MergeSpec(method=m, alpha=a, parameters=self.method_parameters.get(m, {}), seed=self.seed)
            for m in self.methods
            for a in self.alphas
        ]
