"""Training stage: tokenizer, the shared initial checkpoint, datasets, the Trainer set-up.

``train(TrainConfig(...)) -> Path`` runs one text-only or multimodal training; ``fold_adapter`` turns a
LoRA checkpoint into a full babyllava folder; ``plot_loss`` draws runs' loss curves. Imported lazily so that
``babymerge.training.tokenizer`` stays light.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "TrainConfig": ".config",
    "train": ".run",
    "fold_adapter": ".lora",
    "plot_loss": ".loss_plot",
    "milestone_name": ".milestones",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
