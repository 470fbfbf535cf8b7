"""Atomic writes clean up after dead writers only: a partial path whose lock is free, an old unlocked claim."""

from __future__ import annotations

import fcntl
import os
import time

import pytest

from babymerge.errors import BabymergeError
from babymerge.io import atomic_dir, atomic_file, remove_stale_partials


def test_only_dead_writers_partials_are_removed(tmp_path):
    dead = tmp_path / ".a.x1.partial"
    dead.mkdir()
    live = tmp_path / ".b.x2.partial"
    live.write_text("being written")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a running writer holds its lock
    fresh_claim, old_claim = tmp_path / ".c.x3.claiming", tmp_path / ".d.x4.claiming"
    fresh_claim.mkdir()
    old_claim.mkdir()
    os.utime(old_claim, (time.time() - 3600,) * 2)
    (tmp_path / "visible.partial").write_text("not babymerge's")  # not hidden: left alone
    try:
        with atomic_file(tmp_path / "out.txt") as tmp:  # every atomic write cleans its folder first
            tmp.write_text("done")
    finally:
        os.close(fd)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [".b.x2.partial", ".c.x3.claiming", "out.txt", "visible.partial"]
    assert remove_stale_partials(tmp_path) == [live]  # its writer has gone now


def test_an_output_that_appears_meanwhile_is_not_replaced(tmp_path):
    out = tmp_path / "merged"
    with pytest.raises(BabymergeError, match=f"^{out}: output folder appeared while it was written"):
        with atomic_dir(out) as tmp:
            (tmp / "weights").write_text("mine")
            out.mkdir()  # another writer finished first
            (out / "weights").write_text("theirs")
    assert (out / "weights").read_text() == "theirs" and sorted(p.name for p in tmp_path.iterdir()) == ["merged"]
    with pytest.raises(BabymergeError, match="output folder exists"):
        with atomic_dir(out):
            pass
