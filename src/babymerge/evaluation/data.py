"""Evaluation data: the BabyLM ``evaluation_data`` layout, read from a data directory, as lm-eval datasets.

The data directory (``--data-dir``, else ``$BABYMERGE_DATA``, else ``~/.cache/babymerge/evaluation_data``)
follows BabyLM 2025's layout (``full_eval/...``, ``fast_eval/...``) plus ``extra_eval/`` for the original
BLiMP paradigms and Flickr8k-format caption data. A folder may also be given as ``NAME.zip`` (EWoK ships
password-protected): zips are read in memory, nothing is extracted to disk.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BabymergeError

if TYPE_CHECKING:
    import datasets

DATA_ENV = "BABYMERGE_DATA"
DEFAULT_DATA_DIR = Path("~/.cache/babymerge/evaluation_data")
ZIP_PASSWORDS_ENV = "BABYMERGE_ZIP_PASSWORDS"


BABYLM = "evaluation_data from https://github.com/babylm/evaluation-pipeline-2025 (README: OSF download)"


@dataclass(frozen=True)
class Source:
    """Where one data set lives in the data directory, and where a user who is online gets it."""

    path: str
    origin: str
    password: str | None = None
    required: bool = True  # part of BabyLM's public evaluation_data (``babymerge data`` fails without it)


SOURCES: dict[str, Source] = {
    "blimp": Source("full_eval/blimp_filtered", BABYLM),
    "blimp_fast": Source("fast_eval/blimp_fast", BABYLM),
    "blimp_original": Source(
        "extra_eval/blimp_original", "https://github.com/alexwarstadt/blimp (data/*.jsonl)", required=False
    ),
    "supplement": Source("full_eval/supplement_filtered", BABYLM),
    "supplement_fast": Source("fast_eval/supplement_fast", BABYLM),
    "ewok": Source("full_eval/ewok_filtered", BABYLM + "; zip password per the EWoK terms of use", "ewok"),
    "ewok_fast": Source("fast_eval/ewok_fast", BABYLM + "; zip password per the EWoK terms of use", "BabyLM2025"),
    "entity_tracking": Source("full_eval/entity_tracking", BABYLM),
    "entity_tracking_fast": Source("fast_eval/entity_tracking_fast", BABYLM),
    "wug_adj": Source("full_eval/wug_adj_nominalization", BABYLM),
    "wug_past": Source(
        "full_eval/wug_past_tense", "not public: ask the BabyLM organisers (Hofmann et al.)", required=False
    ),
    "winoground": Source(
        "full_eval/winoground_filtered",
        BABYLM + "; images: https://huggingface.co/datasets/facebook/winoground (gated)",
    ),
    "caption_matching": Source(
        "extra_eval/caption_matching", "Flickr8k-format captions.txt (image,caption)", required=False
    ),
}


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The evaluation data directory: ``explicit``, else ``$BABYMERGE_DATA``, else the user cache folder."""
    chosen = explicit or os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser()


def _passwords(source: Source) -> list[bytes]:
    extra = [p for p in os.environ.get(ZIP_PASSWORDS_ENV, "").split(",") if p]
    return [p.encode() for p in ([source.password] if source.password else []) + extra]


def _numbered(file: str, text: str) -> Iterator[tuple[str, int, str]]:
    """``(file, line number in that file, line)`` for the non-empty lines; an empty file is an error (it would
    silently drop its paradigm from a macro-average)."""
    found = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            found = True
            yield file, number, line
    if not found:
        raise BabymergeError(f"{file}: empty data file (expected one JSON record per line)")


def read_lines(
    name: str, root: str | os.PathLike | None = None, suffix: str = ".jsonl"
) -> Iterator[tuple[str, int, str]]:
    """Yield ``(file, line number, line)`` for the non-empty lines of data set ``name``'s files, in name order.

    ``file`` names the file for error messages (``folder/x.jsonl`` or ``folder.zip:member``); line numbers
    count within that file.
    """
    source = SOURCES[name]
    base = data_dir(root) / source.path
    if base.is_dir():
        files = sorted(p for p in base.iterdir() if p.name.endswith(suffix))
        if not files:
            raise BabymergeError(f"{base}: no {suffix} files for {name} (origin: {source.origin})")
        for file in files:
            yield from _numbered(str(file), file.read_text(encoding="utf-8"))
        return
    archive = base if zipfile.is_zipfile(base) else base.with_name(base.name + ".zip")  # a zip linked as NAME too
    if archive.is_file():
        yield from _zip_lines(archive, source, suffix)
        return
    raise BabymergeError(
        f"{base}: not found (nor {archive.name}) for task data {name!r}; looked in data dir {data_dir(root)} "
        f"(set --data-dir or ${DATA_ENV}; origin: {source.origin}; see `babymerge data`)"
    )


def _zip_lines(archive: Path, source: Source, suffix: str) -> Iterator[tuple[str, int, str]]:
    with zipfile.ZipFile(archive) as handle:
        members = sorted((m for m in handle.infolist() if m.filename.endswith(suffix)), key=lambda m: m.filename)
        if not members:
            raise BabymergeError(f"{archive}: no {suffix} files inside the zip")
        for member in members:
            text = None
            for password in _passwords(source) or [None]:
                try:
                    text = handle.read(member, pwd=password).decode("utf-8")
                    break
                except RuntimeError:
                    continue
            if text is None:
                raise BabymergeError(
                    f"{archive}:{member.filename}: wrong or missing zip password (set ${ZIP_PASSWORDS_ENV})"
                )
            yield from _numbered(f"{archive}:{member.filename}", text)


def read_records(name: str, root: str | os.PathLike | None, fields: list[str]) -> Iterator[tuple[str, dict]]:
    """Yield ``(file, record)`` for each JSON line of data set ``name``, checking the required fields."""
    for file, number, line in read_lines(name, root):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise BabymergeError(f"{file}: line {number} is not valid JSON ({error.msg})") from None
        missing = [f for f in fields if f not in record] if isinstance(record, dict) else fields
        if missing:
            raise BabymergeError(f"{file}: line {number} lacks field(s) {missing} (expected {fields})")
        yield file, record


def file_stem(file: str) -> str:
    """``dir/regular.jsonl`` or ``a.zip:dir/regular.jsonl`` -> ``regular``."""
    return Path(file.rsplit(":", 1)[-1]).name.removesuffix(".jsonl")


def caption_file(root: str | os.PathLike | None = None, path: str | os.PathLike | None = None) -> Path:
    """The caption-matching captions (``formats.captions``): ``path``, else ``captions.txt`` in the data dir."""
    file = Path(path) if path else data_dir(root) / SOURCES["caption_matching"].path / "captions.txt"
    if not file.is_file():
        raise BabymergeError(
            f"{file}: captions file not found for caption matching; looked in data dir {data_dir(root)} "
            f"(expected {SOURCES['caption_matching'].path}/captions.txt, Flickr8k format `image,caption`)"
        )
    return file


def describe_sources(root: str | os.PathLike | None = None) -> list[dict[str, str]]:
    """For each data set: its place in the data directory, whether it is there, and where it comes from."""
    base = data_dir(root)
    out = []
    for name, source in SOURCES.items():
        place = base / source.path
        out.append(
            {
                "name": name,
                "path": str(place),
                "present": "yes" if is_present(name, root) else "no",
                "required": "yes" if source.required else "no",
                "origin": source.origin,
            }
        )
    return out


def is_present(name: str, root: str | os.PathLike | None = None) -> bool:
    """Whether data set ``name`` is in the data directory (a folder, a zip linked under its name, or ``NAME.zip``)."""
    place = data_dir(root) / SOURCES[name].path
    return place.is_dir() or zipfile.is_zipfile(place) or place.with_name(place.name + ".zip").is_file()


def missing_data(tasks: dict[str, str], root: str | os.PathLike | None, hint: str) -> str | None:
    """One line naming the first missing data set of ``{task: data set}`` (the folder looked for, the data dir
    and ``hint``: how to give another), or None when all are present. Checked before any model loads."""
    base = data_dir(root)
    if tasks and not base.is_dir():
        return f"{base}: no such data folder for {', '.join(tasks)} ({hint}; see `babymerge data`)"
    for task, name in tasks.items():
        if not is_present(name, root):
            place = base / SOURCES[name].path
            return (
                f"{place}: not found (nor {place.name}.zip) for task data {name!r} of {task}; looked in data dir "
                f"{base} ({hint}; origin: {SOURCES[name].origin}; see `babymerge data`)"
            )
    return None


def image_folder(name: str, root: str | os.PathLike | None = None, captions: str | os.PathLike | None = None) -> Path:
    """Where the data layout keeps the raw images of image data set ``name``: ``images/`` beside the captions
    file (else the captions file's own folder) for caption matching, as ``babymerge features`` reads them;
    ``full_eval/winoground_filtered/images/`` for Winoground (file names ``{image_idx}_{image_key}.png``)."""
    if name == "caption_matching":
        folder = caption_file(root, captions).parent
        return folder / "images" if (folder / "images").is_dir() else folder
    return data_dir(root) / SOURCES[name].path / "images"


def add_image_files(
    dataset: datasets.DatasetDict, name: str, root: str | os.PathLike | None = None, captions: str | None = None
) -> datasets.DatasetDict:
    """``dataset`` (a ``DatasetDict`` whose docs carry an ``image`` id) with ``image_file``, the raw image of each
    doc ("" when the layout has none; ids may omit the extension), and ``image_folder``, where it was looked for."""
    from ..features.images import IMAGE_SUFFIXES

    folder = image_folder(name, root, captions)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    found = {**{p.stem: str(p) for p in files}, **{p.name: str(p) for p in files}}
    for split in dataset:
        ids = dataset[split]["image"]
        dataset[split] = (
            dataset[split]
            .add_column("image_file", [found.get(i, "") for i in ids])
            .add_column("image_folder", [str(folder)] * len(ids))
        )
    return dataset
