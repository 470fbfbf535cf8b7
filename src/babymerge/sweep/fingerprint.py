"""Content fingerprints of what determines a sweep result: checkpoint weights, data files, feature files.

A fingerprint is a short hex digest; equal content gives equal fingerprints whatever the path or file name.
Weights are hashed in full (SHA-256 runs at about a GB/s, small beside loading and scoring them; see
``benchmarks/fingerprint_cost.py``); a process hashes each file once per (size, mtime).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_CACHE: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (cached per path, size and modification time)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _CACHE:
        with open(path, "rb") as handle:
            _CACHE[key] = hashlib.file_digest(handle, "sha256").hexdigest()
    return _CACHE[key]


def files_fingerprint(root: Path, files: Iterable[Path]) -> str:
    """One digest of several files: their paths relative to ``root`` and their content."""
    digest = hashlib.sha256()
    for file in sorted(files):
        digest.update(f"{file.relative_to(root).as_posix()}\0{file_digest(file)}\n".encode())
    return digest.hexdigest()[:16]


def checkpoint_fingerprint(folder: str | os.PathLike) -> str:
    """The weights of a checkpoint folder (``formats.checkpoint.weight_files``): every shard's name and content
    (names of shards are kept so that a re-sharded copy reads as different, which is safe)."""
    from ..formats.checkpoint import weight_files

    return files_fingerprint(Path(folder), weight_files(folder))


def data_fingerprint(path: str | os.PathLike | None) -> str | None:
    """Every file under a data folder (or one file), by relative path and content; ``None`` for no path."""
    if path is None:
        return None
    path = Path(path)
    if path.is_file():
        return files_fingerprint(path.parent, [path])
    if not path.is_dir():
        return "missing"
    return files_fingerprint(path, (p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")))


def features_fingerprint(path: str | os.PathLike | None) -> str | None:
    """A feature file by content: its safetensors header with sorted keys, then its data bytes (safetensors
    writes metadata in hash-map order, so two extractions of the same features differ byte-wise only in the
    header); ``None`` for no path."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        return "missing"
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
        hasher = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
        return hashlib.file_digest(handle, lambda: hasher).hexdigest()[:16]


def digest(fields: dict[str, Any]) -> str:
    """A short digest of JSON-able fields (sorted keys, so dict order does not matter)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]
