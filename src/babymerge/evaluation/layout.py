"""Build the data directory (BabyLM's ``evaluation_data`` layout) from downloaded data sets, as symlinks.

A data set is recognised by the tail of its path in the downloads (``ALIASES``: the names BabyLM's OSF
``evaluation_data`` and the sets' source repositories use) and by holding its files (``.jsonl`` files, or
``captions.txt`` for caption matching; a zip must list ``.jsonl`` members, which needs no password). Zips
(EWoK's are password-protected) are linked as they are, as ``NAME.zip``: nothing is extracted or copied.
"""

from __future__ import annotations

import os
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..errors import BabymergeError
from .data import SOURCES

# Path tails each data set comes under, lower case; the longest matching tail wins (``full_eval/...`` beats
# the copy of the Wug set that BabyLM also ships in ``fast_eval/``).
ALIASES: dict[str, tuple[str, ...]] = {
    "blimp": ("blimp_filtered", "babylm_blimp_filtered"),
    "blimp_fast": ("blimp_fast", "babylm_blimp_fast"),
    "blimp_original": ("blimp_original", "blimp/original", "blimp/data", "blimp-master/data", "blimp-main/data"),
    "supplement": ("supplement_filtered",),
    "supplement_fast": ("supplement_fast",),
    "ewok": ("ewok_filtered", "ewok_filtered_full"),
    "ewok_fast": ("ewok_fast", "ewok_fast_babylm2025"),
    "entity_tracking": ("entity_tracking", "entity_tracking/full"),
    "entity_tracking_fast": ("entity_tracking_fast", "entity_tracking/fast"),
    "wug_adj": ("wug_adj_nominalization", "full_eval/wug_adj_nominalization"),
    "wug_past": ("wug_past_tense", "full_eval/wug_past_tense"),
    "winoground": ("winoground_filtered", "babylm_winoground_filtered"),
    "caption_matching": ("caption_matching", "flickr8k_1k", "flickr8k"),
}
MAX_DEPTH = 6  # folders below each downloads folder that are searched


@dataclass(frozen=True)
class Link:
    name: str  # data set (a key of ``SOURCES``)
    link: Path  # in the data directory
    target: Path  # the downloaded folder or zip


def _holds_data(path: Path, name: str) -> bool:
    """Whether ``path`` holds data set ``name``'s files (a zip's member names are read; no password needed)."""
    try:
        if path.is_dir():
            if name == "caption_matching":
                return (path / "captions.txt").is_file()
            return any(p.suffix == ".jsonl" and p.is_file() for p in path.iterdir())
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return any(n.endswith(".jsonl") for n in archive.namelist())
    except (OSError, zipfile.BadZipFile):  # unreadable: nothing to link
        pass
    return False


def _match(path: Path) -> tuple[str, int] | None:
    """``(data set, length of the matched path tail)`` for the most specific alias ``path`` ends with."""
    parts = [p.lower() for p in path.parts]
    parts[-1] = parts[-1].removesuffix(".zip")
    best = None
    for name, aliases in ALIASES.items():
        for alias in aliases:
            tail = alias.split("/")
            if parts[-len(tail) :] == tail and (best is None or len(tail) > best[1]):
                best = (name, len(tail))
    return best


def _candidates(root: Path) -> list[Path]:
    """``root`` and the folders and zips below it (hidden ones skipped), down to ``MAX_DEPTH``."""
    found, stack = [], [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        found.append(folder)
        matched = _match(folder)
        if depth == MAX_DEPTH or (matched and _holds_data(folder, matched[0])):
            continue  # a data set's own folder is not searched further
        try:
            listing = sorted(folder.iterdir())
        except OSError:  # an unreadable folder holds nothing we can link
            continue
        for entry in listing:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                stack.append((entry, depth + 1))
            elif entry.suffix == ".zip":
                found.append(entry)
    return found


def find_data_sets(downloads: list[str | os.PathLike]) -> dict[str, Path]:
    """``{data set: downloaded folder or zip}`` for the data sets recognised in the ``downloads`` folders."""
    ranked: dict[str, dict[Path, tuple[int, bool]]] = defaultdict(dict)
    for root in downloads:
        root = Path(root).expanduser().resolve()
        if not root.is_dir():
            raise BabymergeError(f"{root}: downloads folder not found (--from expects folders of downloaded data)")
        for path in _candidates(root):
            matched = _match(path)
            if matched and _holds_data(path, matched[0]):
                ranked[matched[0]][path.resolve()] = (matched[1], path.is_file())  # a zip beats its unzipped copy
    found = {}
    for name in (n for n in SOURCES if n in ranked):
        top = max(ranked[name].values())
        first, *others = [path for path, rank in ranked[name].items() if rank == top]
        if others:
            raise BabymergeError(
                f"{name}: found twice in the downloads ({first} and {others[0]}); pass --from folders that hold "
                f"one copy"
            )
        found[name] = first
    return found


def _refuse_conflicts(links: list[Link]) -> None:
    for item in links:
        place = item.link.parent / Path(SOURCES[item.name].path).name
        for entry in (place, place.with_name(place.name + ".zip")):
            if not (entry.is_symlink() or entry.exists()):
                continue
            if entry == item.link and entry.is_symlink() and entry.resolve() == item.target:
                continue
            what = f"a link to {os.readlink(entry)}" if entry.is_symlink() else "not a link"
            raise BabymergeError(
                f"{entry}: already there ({what}); not replacing it with a link to {item.target} (remove it first)"
            )


def build_layout(downloads: list[str | os.PathLike], data_dir: str | os.PathLike) -> list[Link]:
    """Link the data sets found in ``downloads`` into ``data_dir`` (created if needed); returns every link.

    Links already there and pointing at the same data are kept (a rerun adds what is new); any other entry in
    a data set's place is refused before anything is linked. Each link is made under a temporary name and
    renamed into place, so no entry is ever half made.
    """
    data_dir = Path(data_dir).expanduser()
    found = find_data_sets(downloads)
    if not found:
        raise BabymergeError(
            f"no evaluation data set recognised in {', '.join(map(str, downloads))} (expected BabyLM's "
            f"evaluation_data folders such as blimp_fast/ or ewok_fast.zip; see `babymerge data`)"
        )
    links = [
        Link(name, data_dir / (SOURCES[name].path + (".zip" if target.is_file() else "")), target)
        for name, target in found.items()
    ]
    _refuse_conflicts(links)
    for item in links:
        if item.link.is_symlink():
            continue  # the same link, checked above
        item.link.parent.mkdir(parents=True, exist_ok=True)
        temporary = item.link.with_name(f".{item.link.name}.{os.getpid()}.partial")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(item.target)
        os.replace(temporary, item.link)
    return links
