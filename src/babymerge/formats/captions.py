"""Caption files: image ids with their captions, as Flickr8k ships them.

Two layouts, told apart by the first non-blank line:
- CSV with a header naming an ``image`` (or ``image_id``) and a ``caption`` column, any order, names
  case-insensitive (Flickr8k as on Kaggle: ``image,caption``); quoted fields may hold commas, and when
  ``caption`` is the last column the unquoted commas of a row's extra fields are kept in the caption;
- tab-separated ``image#k<TAB>caption`` lines with no header (the original ``Flickr8k.token.txt``); the
  ``#k`` caption number is dropped from the id.

One policy for every reader: UTF-8; blank lines are skipped; every other row needs an image id and a
non-empty caption, else one error naming the file and line; ids and captions are stripped of surrounding
blanks; an image may have any number of captions (rows keep file order, repeats included). Written files are
always the CSV layout, whole or not at all.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import BabymergeError
from ..io import atomic_file

IMAGE_COLUMNS = ("image", "image_id")
FORMATS = "a CSV with an image,caption header or image#k<TAB>caption lines"


def read_captions(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``(image id, caption)`` rows of a caption file, in file order."""
    path = Path(path)
    if not path.is_file():
        raise BabymergeError(f"{path}: captions file not found (expected {FORMATS})")
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            lines = handle.readlines()
    except UnicodeDecodeError:
        raise BabymergeError(f"{path}: not a UTF-8 captions file (expected {FORMATS})") from None
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise BabymergeError(f"{path}: no captions (expected {FORMATS})")
    rows = _read_tsv(path, lines) if "\t" in first else _read_csv(path, lines)
    if not rows:
        raise BabymergeError(f"{path}: no captions (expected {FORMATS})")
    return rows


def _read_tsv(path: Path, lines: list[str]) -> list[tuple[str, str]]:
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        key, tab, caption = line.rstrip("\r\n").partition("\t")
        rows.append(_row(path, number, key.split("#")[0], caption if tab else "", "image#k<TAB>caption"))
    return rows


def _read_csv(path: Path, lines: list[str]) -> list[tuple[str, str]]:
    reader = csv.reader(lines)
    header = next(reader)
    while not any(field.strip() for field in header):
        header = next(reader)
    names = [field.strip().lower() for field in header]
    image = next((names.index(name) for name in IMAGE_COLUMNS if name in names), None)
    if image is None or "caption" not in names:
        raise BabymergeError(
            f"{path}:{reader.line_num}: header must name 'image' and 'caption' columns, found {header}"
        )
    caption = names.index("caption")
    rows = []
    for row in reader:
        if not any(field.strip() for field in row):
            continue
        text = ",".join(row[caption:]) if caption == len(names) - 1 else (row[caption] if caption < len(row) else "")
        rows.append(_row(path, reader.line_num, row[image] if image < len(row) else "", text, "image,caption"))
    return rows


def _row(path: Path, number: int, image: str, caption: str, layout: str) -> tuple[str, str]:
    image, caption = image.strip(), caption.strip()
    if not image or not caption:
        raise BabymergeError(f"{path}:{number}: expected {layout} with an image id and a caption")
    return image, caption


def caption_images(rows: Iterable[tuple[str, str]]) -> list[str]:
    """The distinct image ids of caption rows, in order of first mention."""
    return list(dict.fromkeys(image for image, _ in rows))


def write_captions(path: str | os.PathLike, rows: Iterable[tuple[str, str]]) -> Path:
    """Write rows as a CSV caption file (``image,caption`` header), replacing ``path`` only when complete."""
    path = Path(path)
    with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["image", "caption"])
        writer.writerows((image, caption) for image, caption in rows)
    return path
