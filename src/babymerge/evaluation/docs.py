"""lm-eval datasets for each task, built from the data directory (``custom_dataset`` of the task YAMLs).

Every builder takes ``data_dir`` (from lm-eval's ``--metadata``/TaskManager metadata, else the environment)
and returns a ``DatasetDict`` with one ``test`` split of uniform documents.

Tasks scored as a macro-average over paradigms (BLiMP and supplement UIDs, EWoK domains, Entity Tracking's
split x numops) list their documents round-robin across paradigms: lm-eval's ``--limit N`` takes the first N
documents, so a limited run samples every paradigm (``min(N, paradigms)`` of them), while full-set scores,
being per-paradigm means, do not depend on the order. :func:`reading` tells which data files a task reads.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from itertools import chain, zip_longest
from pathlib import Path
from typing import Any, TypeVar

import datasets

from ..errors import BabymergeError
from ..formats.captions import read_captions
from .data import SOURCES, caption_file, file_stem, read_records
from .data import data_dir as resolve_data_dir

T = TypeVar("T")
_GAP = object()
_recordings: list[set[Path]] = []


def round_robin(items: list[T], paradigm: Callable[[T], Hashable]) -> list[T]:
    """``items`` reordered: the first of each paradigm (in order of first appearance), then the second, ...;
    the order within a paradigm is kept."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(paradigm(item), []).append(item)
    return [item for item in chain.from_iterable(zip_longest(*groups.values(), fillvalue=_GAP)) if item is not _GAP]


@contextmanager
def reading() -> Iterator[set[Path]]:
    """Collect the data the builders read inside the block: each data set's folder or zip, each captions file."""
    _recordings.append(found := set())
    try:
        yield found
    finally:
        _recordings.pop()  # blocks nest, so this one is the last


def _read(path: Path) -> Path:
    for found in _recordings:
        found.add(path)
    return path


def _records(source: str, data_dir: str | None, fields: list[str]) -> Iterator[tuple[str, dict]]:
    """``read_records``, noting the data set's folder (or zip) for :func:`reading`."""
    base = resolve_data_dir(data_dir) / SOURCES[source].path
    _read(base if base.exists() else base.with_name(base.name + ".zip"))
    return read_records(source, data_dir, fields)


def _dataset(docs: list[dict[str, Any]], name: str) -> datasets.DatasetDict:
    if not docs:
        raise BabymergeError(f"no documents found for {name}")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def minimal_pairs(source: str, data_dir: str | None = None, **_: Any) -> datasets.DatasetDict:
    """BLiMP-style pairs: ``uid`` (the record's UID, else the file name), ``sentence_good``, ``sentence_bad``."""
    docs = [
        {"uid": record.get("UID") or file_stem(file), "good": record["sentence_good"], "bad": record["sentence_bad"]}
        for file, record in _records(source, data_dir, ["sentence_good", "sentence_bad"])
    ]
    return _dataset(round_robin(docs, lambda doc: doc["uid"]), source)


def ewok(source: str, data_dir: str | None = None, **_: Any) -> datasets.DatasetDict:
    """EWoK items: ``context`` (Context1), ``targets`` [Target1, Target2], ``uid`` (Domain)."""
    fields = ["Domain", "Context1", "Target1", "Target2"]
    docs = [
        {"uid": r["Domain"], "context": r["Context1"], "targets": [r["Target1"], r["Target2"]]}
        for _, r in _records(source, data_dir, fields)
    ]
    return _dataset(round_robin(docs, lambda doc: doc["uid"]), source)


def entity_tracking(source: str, data_dir: str | None = None, **_: Any) -> datasets.DatasetDict:
    """Entity tracking: ``prefix``, ``options`` (first correct), ``split`` (file), ``numops``."""
    docs = []
    for file, r in _records(source, data_dir, ["input_prefix", "options", "numops"]):
        if not isinstance(r["options"], list) or len(r["options"]) < 2:
            raise BabymergeError(f"{file}: 'options' must be a list of at least 2 strings, found {r['options']!r}")
        docs.append(
            {"prefix": r["input_prefix"], "options": r["options"], "split": file_stem(file), "numops": int(r["numops"])}
        )
    return _dataset(round_robin(docs, lambda doc: (doc["split"], doc["numops"])), source)


def wug(source: str, data_dir: str | None = None, **_: Any) -> datasets.DatasetDict:
    """Wug items: the two tab-separated ``sentences`` and the human ``ratio``."""
    docs = []
    for file, r in _records(source, data_dir, ["sentences", "ratio"]):
        sentences = r["sentences"].split("\t")
        if len(sentences) != 2:
            raise BabymergeError(f"{file}: 'sentences' must hold 2 tab-separated sentences, found {len(sentences)}")
        docs.append({"sentences": sentences, "ratio": float(r["ratio"])})
    return _dataset(docs, source)


def winoground_image_id(image_idx: int, image_key: str) -> str:
    """Feature-file id of a Winoground image: ``{example}_{image_0|image_1}`` (file extensions are ignored)."""
    return f"{image_idx}_{image_key}"


def winoground(data_dir: str | None = None, **_: Any) -> datasets.DatasetDict:
    """BabyLM's Winoground rows: ``image`` id, ``captions`` [correct, other], ``example`` index, ``image_key``."""
    fields = ["image_idx", "image_key", "caption_0", "caption_1"]
    docs = []
    for file, r in _records("winoground", data_dir, fields):
        if r["image_key"] not in ("image_0", "image_1"):
            raise BabymergeError(f"{file}: image_key must be image_0 or image_1, found {r['image_key']!r}")
        docs.append(
            {
                "image": winoground_image_id(int(r["image_idx"]), r["image_key"]),
                "example": int(r["image_idx"]),
                "image_key": r["image_key"],
                "captions": [r["caption_0"], r["caption_1"]],
            }
        )
    return _dataset(docs, "winoground")


def caption_matching(
    data_dir: str | None = None, captions: str | None = None, per_image: int = 0, **_: Any
) -> datasets.DatasetDict:
    """Held-out caption matching: each image with its true caption against the same-numbered caption of the
    image half-way round the list (deterministic). ``per_image`` > 0 keeps that many captions per image."""
    by_image: dict[str, list[str]] = {}
    for image, caption in read_captions(_read(caption_file(data_dir, captions))):
        by_image.setdefault(image, []).append(caption)
    images = list(by_image)
    if len(images) < 2:
        raise BabymergeError("caption matching needs captions of at least 2 images")
    docs = []
    for k, image in enumerate(images):
        other = by_image[images[(k + len(images) // 2) % len(images)]]
        own = by_image[image][: per_image or None]
        for j, caption in enumerate(own):
            docs.append({"image": image, "captions": [caption, other[j % len(other)]]})
    return _dataset(docs, "caption_matching")
