"""Atomic writes: every product is written beside its destination and renamed into place when complete."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import BabymergeError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _as_if_created(path: Path, mode: int) -> None:
    """Temporary paths (and some writers) are private (0700/0600); give products the modes mkdir/open would."""
    os.chmod(path, mode & ~_umask())


@contextmanager
def atomic_dir(path: str | os.PathLike, *, overwrite: bool = False, create: bool = True) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``path`` only if the block finishes without an error.

    ``create=False`` yields a path that does not exist yet, for writers that insist on making the folder.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise BabymergeError(f"{path}: output folder exists; choose another path or remove it")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    tmp = staging if create else staging / path.name
    try:
        yield tmp
        if not tmp.is_dir():
            raise BabymergeError(f"{path}: nothing was written")
        _as_if_created(tmp, 0o777)
        for item in tmp.rglob("*"):
            _as_if_created(item, 0o777 if item.is_dir() else 0o666)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path that replaces ``path`` only if the block finishes without an error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _as_if_created(tmp, 0o666)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
