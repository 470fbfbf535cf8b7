"""lm-eval results dicts (``simple_evaluate``/``evaluate`` output, or a saved ``results_*.json``), flattened.

One policy for every reader: a metric is a ``metric,filter`` key of a task's (or group's) table whose value
is a number (bools are not), other than a ``*_stderr`` one (``alias`` and ``sample_len`` have no filter, so
they are not metrics); a metric's standard error is its ``metric_stderr,filter`` entry when that is a finite
number.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    task: str
    name: str
    filter: str
    value: float
    stderr: float | None

    @property
    def key(self) -> str:
        """lm-eval's own key, ``metric,filter``."""
        return f"{self.name},{self.filter}"

    @property
    def label(self) -> str:
        """The metric name, with its filter when that is not lm-eval's default ``none``."""
        return self.name if self.filter == "none" else self.key


def metrics(results: dict[str, Any], sections: tuple[str, ...] = ("results",)) -> Iterator[Metric]:
    """Every metric of the named sections (``results``, ``groups``) of an lm-eval results dict, in order; a
    task or group named in several sections takes its table from the last."""
    tables: dict[str, Any] = {}
    for section in sections:
        tables.update(results.get(section) or {})
    for task, values in tables.items():
        if isinstance(values, dict):
            for key, value in values.items():
                name, comma, filt = key.partition(",")
                if not comma or name.endswith("_stderr"):
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                stderr = values.get(f"{name}_stderr,{filt}")
                finite = isinstance(stderr, (int, float)) and not isinstance(stderr, bool) and math.isfinite(stderr)
                yield Metric(task, name, filt, float(value), float(stderr) if finite else None)
