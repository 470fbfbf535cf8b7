"""Per-document metric items as the sweep stores them, and the intervals and paired comparisons made from them.

A task's items (what its ``process_results`` returned for the primary metric: bare values, ``(uid, value)``,
``(split, numops, value)`` or Wug's ``(p, ratio)``) are stored as one string, base64 of zlib-compressed JSON, so
that a record stays one short-to-parse line and the exact values come back. Intervals and comparisons use
``evaluation.uncertainty`` with a fixed seed, so a table rebuilt from the store is the same table; they are
cached by the stored strings, since one report asks for the same cell several times.
"""

from __future__ import annotations

import base64
import json
import zlib
from functools import lru_cache
from typing import Any

from ..evaluation.controls import ImageEffect, image_effect
from ..evaluation.uncertainty import LEVEL, Comparison, Interval, compare, interval

SEED = 0  # bootstrap seed of every table: rebuilt tables are identical
FIELD = "item_scores"  # the record field that holds the encoded items


def encode(items: list[Any]) -> str:
    return base64.b64encode(zlib.compress(json.dumps(items, separators=(",", ":")).encode(), 6)).decode("ascii")


def decode(payload: str) -> list[Any]:
    return json.loads(zlib.decompress(base64.b64decode(payload)))


@lru_cache(maxsize=4096)
def interval_of(payload: str) -> Interval:
    """The score of stored items with its 95% interval (exact binomial for a plain accuracy, else bootstrap)."""
    return interval(decode(payload), LEVEL, seed=SEED)


@lru_cache(maxsize=4096)
def comparison_of(a: str, b: str) -> Comparison | None:
    """a against b on the same stored items; None when they are not the same items (other documents)."""
    try:
        return compare(decode(a), decode(b), LEVEL, seed=SEED)
    except ValueError:
        return None


@lru_cache(maxsize=1024)
def effect_of(task: str, with_image: str, without: str) -> ImageEffect | None:
    """An image task's stored items against its no-image control's (``controls.image_effect``, seed 0, 95%);
    None when they are not the same items."""
    try:
        return image_effect(task, decode(with_image), decode(without))
    except ValueError:
        return None


def scaled(value: Interval | Comparison, scale: float = 100.0) -> tuple[float, float]:
    """``(low, high)`` x ``scale`` (the tables' x100)."""
    return scale * value.low, scale * value.high


def verdict_text(comparison: Comparison | None, verdict: str | None = None) -> str:
    """``+1.20 [0.40, 2.00] ahead`` (x100; ``verdict`` in place of the comparison's own); ``no items stored`` when
    there is nothing to compare."""
    if comparison is None:
        return "no items stored"
    low, high = scaled(comparison)
    return f"{100 * comparison.difference:+.2f} [{low:+.2f}, {high:+.2f}] {verdict or comparison.verdict}"
