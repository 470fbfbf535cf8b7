"""Atomic writes: every product is written beside its destination and renamed into place when complete.

The hidden ``.NAME.XXXX.partial`` staging path is locked (``flock``) by its writer while it lives; the kernel
drops the lock when the writer dies, even by SIGKILL, so the next atomic write into the same folder removes
partial outputs whose lock is free.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import BabymergeError

CLAIM_GRACE_S = 60  # a live writer holds an unlocked *.claiming path for microseconds


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _as_if_created(path: Path, mode: int) -> None:
    """Temporary paths (and some writers) are private (0700/0600); give products the modes mkdir/open would."""
    os.chmod(path, mode & ~_umask())


def _lock(fd: int) -> bool:
    """Take the exclusive lock without waiting; False if another process holds it (or locks are unsupported)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _claimed(path: Path, fd: int) -> Path:
    """Lock a fresh ``*.claiming`` staging path and give it its ``.partial`` name (never seen unlocked)."""
    _lock(fd)
    claimed = path.with_suffix(".partial")
    os.rename(path, claimed)
    return claimed


def remove_stale_partials(folder: str | os.PathLike) -> list[Path]:
    """Remove the ``.*.partial`` staging paths in ``folder`` whose writer is dead (nobody holds their lock),
    and ``.*.claiming`` ones (a writer killed within microseconds of creating one) older than a minute."""
    folder = Path(folder)
    removed = []
    old_claims = [p for p in folder.glob(".*.claiming") if time.time() - p.lstat().st_mtime > CLAIM_GRACE_S]
    for entry in [*folder.glob(".*.partial"), *old_claims]:
        try:
            fd = os.open(entry, os.O_RDONLY)
        except OSError:
            continue
        try:
            if _lock(fd):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                removed.append(entry)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def refuse_existing(path: str | os.PathLike) -> Path:
    """``path``, refused when something is there already (checked before any work, and again at the end)."""
    path = Path(path)
    if path.exists():
        raise BabymergeError(f"{path}: output folder exists; choose another path or remove it")
    return path


@contextmanager
def atomic_dir(path: str | os.PathLike, *, overwrite: bool = False, create: bool = True) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``path`` only if the block finishes without an error.

    ``create=False`` yields a path that does not exist yet, for writers that insist on making the folder.
    Without ``overwrite``, a ``path`` that appears meanwhile (another writer) is left alone and this result
    is not published.
    """
    path = Path(path) if overwrite else refuse_existing(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path.parent)
    claiming = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".claiming", dir=path.parent))
    fd = os.open(claiming, os.O_RDONLY)
    try:
        staging = _claimed(claiming, fd)
        tmp = staging if create else staging / path.name
        yield tmp
        if not tmp.is_dir():
            raise BabymergeError(f"{path}: nothing was written")
        _as_if_created(tmp, 0o777)
        for item in tmp.rglob("*"):
            _as_if_created(item, 0o777 if item.is_dir() else 0o666)
        if path.exists():
            if not overwrite:
                raise BabymergeError(f"{path}: output folder appeared while it was written; result left unpublished")
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        for leftover in (claiming, claiming.with_suffix(".partial")):
            shutil.rmtree(leftover, ignore_errors=True)
        os.close(fd)


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path that replaces ``path`` only if the block finishes without an error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path.parent)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".claiming", dir=path.parent)
    try:
        tmp = _claimed(Path(name), fd)
        yield tmp
        _as_if_created(tmp, 0o666)
        os.replace(tmp, path)
    finally:
        for leftover in (Path(name), Path(name).with_suffix(".partial")):
            leftover.unlink(missing_ok=True)
        os.close(fd)
