"""No-image controls: does a model's choice on an image task depend on the image?

Each image task ``T`` has a control task ``T_no_image`` (``evaluation_tasks/T_no_image.yaml``): the same items
with the black image's features in place of each item's, as the training's text rows see. A model that ignores
its images scores the two identically, item by item; caption matching pairs each image's caption with another
image's, so such a model sits at exactly 50 by symmetry. :func:`image_effect` compares the two on the same
items (``uncertainty.compare``) and says in words whether the image changed the model's choices; the sweep scores
the controls at alpha 0 and 1 (``sweep.tasks.point_tasks``) and shows :attr:`ImageEffect.verdict` in its tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy and scipy load only when a comparison is made (``--help`` stays light)
    from .uncertainty import Comparison

SUFFIX = "_no_image"
IMAGE_TASKS = ("babylm_winoground", "babylm_caption_matching", "babylm_caption_matching_fast")


def control_of(task: str) -> str | None:
    """The no-image control of an image task, or None."""
    return task + SUFFIX if task in IMAGE_TASKS else None


def image_task_of(task: str) -> str | None:
    """The image task whose no-image control ``task`` is, or None."""
    base = task.removesuffix(SUFFIX)
    return base if base != task and base in IMAGE_TASKS else None


def with_controls(tasks: Iterable[str]) -> list[str]:
    """``tasks`` with each image task's control after it (once)."""
    out: list[str] = []
    for task in tasks:
        for name in (task, control_of(task)):
            if name is not None and name not in out:
                out.append(name)
    return out


CHANGED = "the image changed the model's choices"
SAME = "not distinguishable from its no-image control"


@dataclass(frozen=True)
class ImageEffect:
    task: str
    changed: int  # items whose choice differs with and without the image
    items: int
    comparison: Comparison  # accuracy with the image minus without, paired over items

    @property
    def verdict(self) -> str:
        """In words, from the 95% interval of the difference: :data:`CHANGED` when it excludes 0, else :data:`SAME`."""
        return SAME if self.comparison.verdict == "not distinguishable" else CHANGED

    def sentence(self) -> str:
        c = self.comparison
        diff = f"{100 * c.difference:+.2f} points [{100 * c.low:+.2f}, {100 * c.high:+.2f}]"
        if self.changed == 0:
            return f"{self.task}: the image changed none of {self.items} choices (the model ignores its images)"
        said = {
            "ahead": "the image helps: ahead of the no-image control",
            "behind": "the image hurts: behind the no-image control",
            "not distinguishable": "not distinguishable from the no-image control at 95%",
        }[c.verdict]
        return f"{self.task}: {said}, {diff}; the image changed {self.changed} of {self.items} choices"


def image_effect(task: str, with_image: Sequence[Any], without: Sequence[Any]) -> ImageEffect:
    """Per-item ``acc`` values of ``task`` and of its control (same documents, same order)."""
    from .uncertainty import compare

    changed = sum(a != b for a, b in zip(with_image, without, strict=True))
    return ImageEffect(task, changed, len(with_image), compare(with_image, without))
