"""Weight diagnostics of a text-only / multimodal pair against their shared initialisation.

Task vectors are each parent minus the base (``tau_text = text - base``, ``tau_mm = multimodal - base``).
Per layer and tensor group they are flattened and joined, then compared:

- ``cosine``: ``<tau_text, tau_mm> / (|tau_text| |tau_mm|)`` (``None`` when either is zero);
- ``text_norm`` / ``multimodal_norm``: L2 norms of the task vectors;
- ``distance``: L2 distance between the parents (``|text - multimodal|``, the same as ``|tau_text - tau_mm|``);
- ``sign_conflict``: the share of entries where the task vectors have opposite signs (``tau_text * tau_mm < 0``),
  the entries TIES resolves by its sign election; an entry either side left unchanged is no conflict.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

import torch

LAYER = re.compile(r"\.layers\.(\d+)\.")
GROUPS = (
    ("projector", ("multi_modal_projector",)),
    ("attention", ("self_attn",)),
    ("mlp", (".mlp.",)),
    ("embeddings", ("embed_tokens", "lm_head")),
    ("norm", ("norm",)),
)
ORDER = ("embeddings", "attention", "mlp", "norm", "projector", "other")  # rows and figures list groups so
ALL = "all"


def tensor_group(name: str) -> str:
    """The group of a tensor: attention, mlp, norm, embeddings (input and output), projector, or other."""
    return next((group for group, marks in GROUPS if any(mark in name for mark in marks)), "other")


def tensor_layer(name: str) -> str:
    """The decoder layer index of a tensor as text, or ``-`` for tensors outside the layers."""
    match = LAYER.search(name)
    return match.group(1) if match else "-"


class Sums:
    """Running sums over the entries of one (layer, group) cell."""

    def __init__(self) -> None:
        self.dot = self.text = self.multimodal = self.distance = 0.0
        self.conflicts = self.entries = 0

    def add(self, tau_text: torch.Tensor, tau_mm: torch.Tensor) -> None:
        a, b = tau_text.double().flatten(), tau_mm.double().flatten()
        self.dot += float(a @ b)
        self.text += float(a @ a)
        self.multimodal += float(b @ b)
        self.distance += float((a - b) @ (a - b))
        self.conflicts += int((a * b < 0).sum())
        self.entries += a.numel()

    def merged(self, other: Sums) -> Sums:
        out = Sums()
        for key in vars(out):
            setattr(out, key, getattr(self, key) + getattr(other, key))
        return out

    def row(self) -> dict[str, float | int | None]:
        scale = math.sqrt(self.text * self.multimodal)
        return {
            "cosine": self.dot / scale if scale > 0 else None,
            "text_norm": math.sqrt(self.text),
            "multimodal_norm": math.sqrt(self.multimodal),
            "distance": math.sqrt(self.distance),
            "sign_conflict": self.conflicts / self.entries if self.entries else None,
            "entries": self.entries,
        }


def cosine(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """The cosine between two tensors, flattened (``None`` when either is zero)."""
    sums = Sums()
    sums.add(a, b)
    return sums.row()["cosine"]


def sign_conflict(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """The share of entries where ``a`` and ``b`` have opposite signs (zero on either side: no conflict)."""
    sums = Sums()
    sums.add(a, b)
    return sums.row()["sign_conflict"]


def weight_rows(
    text: dict[str, torch.Tensor], multimodal: dict[str, torch.Tensor], base: dict[str, torch.Tensor]
) -> list[dict]:
    """One row per (layer, group), then each group over all layers (layer ``all``), then the whole model."""
    cells: dict[tuple[str, str], Sums] = defaultdict(Sums)
    for name, initial in base.items():
        if not initial.is_floating_point():
            continue
        cells[(tensor_layer(name), tensor_group(name))].add(text[name] - initial, multimodal[name] - initial)
    by_group: dict[str, Sums] = defaultdict(Sums)
    for (_, group), sums in cells.items():
        by_group[group] = by_group[group].merged(sums)
    total = Sums()
    for sums in by_group.values():
        total = total.merged(sums)

    def order(key: tuple[str, str]) -> tuple[bool, int, int]:
        layer, group = key
        return layer == "-", int(layer) if layer.isdigit() else 0, ORDER.index(group)

    rows = [
        {"layer": layer, "group": group, **cells[(layer, group)].row()} for layer, group in sorted(cells, key=order)
    ]
    rows += [{"layer": ALL, "group": group, **by_group[group].row()} for group in ORDER if group in by_group]
    rows.append({"layer": ALL, "group": ALL, **total.row()})
    return rows
