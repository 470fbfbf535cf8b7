"""An append-only JSONL results store that several processes can write at once, and resume from.

One line per result: ``{"pair", "method", "alpha", "task", "inputs", "metric", "value", ...}``. A result is
identified by :class:`PointKey` plus its metric: ``inputs`` is a digest of everything else that determines it
(checkpoint weights, method parameters, seed, limit, the data the task reads), so a result is reused only for
the same inputs.
A merge point's ``pair`` is ``text=NAME+multimodal=NAME``; a single checkpoint's own score (the selection
rule's) has ``pair`` ``ROLE=NAME``, ``method`` ``checkpoint`` and no ``alpha``. Keys are made and read here only.
The first line with a key wins, so a result is never counted twice. Writers take an exclusive ``fcntl`` lock
on a side file, re-read the keys, and append only new records, then ``fsync``: a killed writer leaves at most
one unfinished last line, which readers skip and the next writer closes with a newline. Sweeps skip every
(point, task) already present, so a rerun resumes.

The per-document items behind a score (``items.FIELD``) go to a sidecar store, ``results.items.jsonl``, one
record per (point key, metric) under the same rules, so the results file stays quick to read. They are written
before the result, so a stored result has its items unless it was scored without them (an older store).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import BabymergeError, BadValueError
from .items import FIELD

LEGACY = ""  # the ``inputs`` of records written before inputs were fingerprinted: they match no point
SELECT = "checkpoint"  # the ``method`` of a single checkpoint's own score (the selection rule's)


def pair_name(text: str, multimodal: str) -> str:
    """The ``pair`` of a merge of the checkpoints named ``text`` and ``multimodal``."""
    return f"text={text}+multimodal={multimodal}"


class PointKey(NamedTuple):
    """What identifies a (point, task): ``inputs`` digests weights, parameters, seed, limit and the task's data."""

    pair: str
    method: str
    alpha: float | None
    task: str
    inputs: str

    @classmethod
    def make(cls, pair: str, method: str, alpha: float | None, task: str, inputs: str) -> PointKey:
        """``alpha`` is rounded so 0.3 and 0.30000000000000004 are one point."""
        return cls(pair, method, None if alpha is None else round(float(alpha), 6), task, inputs)

    @classmethod
    def checkpoint(cls, role: str, name: str, task: str, inputs: str) -> PointKey:
        """The key of one checkpoint's own score on ``task`` (the selection rule's)."""
        return cls.make(f"{role}={name}", SELECT, None, task, inputs)

    @classmethod
    def of(cls, record: dict[str, Any]) -> PointKey:
        return cls.make(
            record["pair"], record["method"], record.get("alpha"), record["task"], record.get("inputs", LEGACY)
        )

    def fields(self) -> dict[str, Any]:
        """The key as record fields."""
        return self._asdict()

    @property
    def point(self) -> tuple[str, str, float | None]:
        """``(pair, method, alpha)``: the merge point, whatever the task and inputs."""
        return self.pair, self.method, self.alpha

    def any_inputs(self) -> PointKey:
        """The same (point, task) with the inputs left out: equal for results of one point under other inputs."""
        return self._replace(inputs=LEGACY)

    def scored_checkpoint(self) -> tuple[str, str] | None:
        """``(role, checkpoint name)`` of a selection-rule score; None for a merge point."""
        if self.method != SELECT:
            return None
        role, _, name = self.pair.partition("=")
        return role, name


def record_key(record: dict[str, Any]) -> tuple[PointKey, str]:
    """The identity of a result: its point key and metric."""
    return PointKey.of(record), record["metric"]


@dataclass
class _KeysRead:
    """What :meth:`ResultStore.keys` has read of a store file: its keys up to ``offset``, ending in ``tail``."""

    ident: tuple[int, int] | None = None  # (device, inode) of the file read
    offset: int = 0
    tail: bytes = b""
    keys: set[tuple[PointKey, str]] = field(default_factory=set)


class ResultStore:
    """Results of a sweep in ``path`` (JSONL), shared by every process that writes to it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._read = _KeysRead()  # the keys of the lines read so far, and where reading stopped

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @cached_property
    def items_store(self) -> ResultStore:
        """The sidecar store of per-document items: ``results.items.jsonl`` beside ``results.jsonl``."""
        return type(self)(self.path.with_name(f"{self.path.stem}.items{self.path.suffix}"))

    def records(self, with_items: bool = False) -> list[dict[str, Any]]:
        """Every complete record, first occurrence of each key only, in file order; ``with_items``: each record
        whose items the sidecar holds carries them (``items.FIELD``)."""
        if with_items:
            stored = {record_key(r): r[FIELD] for r in self.items_store.records() if FIELD in r}
            return [{**r, FIELD: stored[k]} if (k := record_key(r)) in stored else r for r in self.records()]
        if not self.path.exists():
            return []
        seen: set[tuple] = set()
        out = []
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    break  # an unfinished line from a writer that was killed
                try:
                    record = json.loads(line)
                    key = record_key(record)
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue
                if key not in seen:
                    seen.add(key)
                    out.append(record)
        return out

    def keys(self) -> set[tuple[PointKey, str]]:
        """Every stored key. Each line is parsed once per store object: a later call reads only what was appended
        since (by any process); a file replaced or rewritten under it is read again from the start."""
        read = self._read
        try:
            with open(self.path, "rb") as handle:
                ident = os.fstat(handle.fileno())
                if (ident.st_dev, ident.st_ino) != read.ident or ident.st_size < read.offset:
                    read = self._read = _KeysRead((ident.st_dev, ident.st_ino))
                handle.seek(read.offset - len(read.tail))
                chunk = handle.read()
        except FileNotFoundError:
            self._read = _KeysRead()
            return set()
        if not chunk.startswith(read.tail):  # rewritten in place: start again
            self._read = _KeysRead()
            return self.keys()
        chunk = chunk[len(read.tail) :]
        end = chunk.rfind(b"\n") + 1  # an unfinished last line is read when a writer has closed it
        for line in chunk[:end].splitlines():
            try:
                read.keys.add(record_key(json.loads(line)))
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
                continue
        if end:
            read.offset += end
            read.tail = chunk[max(end - 64, 0) : end]
        return set(read.keys)

    def done(self) -> set[PointKey]:
        """The point key of every result present."""
        return {key for key, _ in self.keys()}

    def wait_for(
        self,
        keys: Iterable[PointKey],
        what: str,
        timeout_s: float = 24 * 3600,
        poll_s: float = 2.0,
        check: Callable[[], None] | None = None,
    ) -> None:
        """Wait until every key is present (other ranks score them); the store is re-read only when it has
        grown. ``check`` runs at each poll and raises to stop waiting (a rank that failed, say)."""
        keys, size = set(keys), -1
        deadline = time.monotonic() + timeout_s
        while True:
            grown = self.path.stat().st_size if self.path.exists() else 0
            if grown != size:
                size = grown
                if keys <= self.done():
                    return
            if check is not None:
                check()
            if time.monotonic() > deadline:
                raise BabymergeError(f"{self.path}: {what} never arrived from other ranks")
            time.sleep(poll_s)

    def missing(self, keys: list[PointKey]) -> tuple[list[PointKey], dict[PointKey, dict[str, Any] | None]]:
        """The keys the store lacks; and for each of those it holds under other inputs, the last such result's
        ``input_fields`` (None for a result stored before inputs were fingerprinted), to say what changed."""
        records = self.records()
        done = {PointKey.of(r) for r in records}
        before = {PointKey.of(r).any_inputs(): r.get("input_fields") for r in records}
        todo = [k for k in keys if k not in done]
        return todo, {k: before[k.any_inputs()] for k in todo if k.any_inputs() in before}

    @contextmanager
    def sole_writer(self, what: str = "sweep") -> Iterator[None]:
        """Hold ``<store>.running`` while a sweep runs; a second sweep on the same store is refused (one line).

        Ranks of one distributed sweep share the store: only rank 0 takes the lock.
        """
        if int(os.environ.get("RANK", 0)) != 0:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        running = self.path.with_name(self.path.name + ".running")
        with open(running, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "another process"
                raise BabymergeError(
                    f"{self.path}: another {what} is writing this store ({owner}); wait for it or choose another --out"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle, fcntl.LOCK_UN)

    def append_scored(self, records: list[dict[str, Any]]) -> int:
        """Append results whose rows may carry items: the items to the sidecar first, then the results."""
        keys = ("pair", "method", "alpha", "task", "inputs", "metric")
        self.items_store.append([{**{k: r.get(k) for k in keys}, FIELD: r[FIELD]} for r in records if FIELD in r])
        return self.append([{k: v for k, v in r.items() if k != FIELD} for r in records])

    def append(self, records: list[dict[str, Any]]) -> int:
        """Append the records whose keys are not yet present; return how many were written."""
        if not records:
            return 0
        with self._locked():
            present = self.keys()
            lines = []
            for record in records:
                key = record_key(record)
                if key not in present:
                    present.add(key)
                    lines.append(json.dumps(record, sort_keys=True) + "\n")
            if not lines:
                return 0
            with open(self.path, "a+b") as handle:
                handle.seek(0, os.SEEK_END)
                if handle.tell() > 0:
                    handle.seek(-1, os.SEEK_END)
                    if handle.read(1) != b"\n":
                        handle.write(b"\n")  # close a line left unfinished by a killed writer
                handle.write("".join(lines).encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            return len(lines)


def result_records(
    key: PointKey, rows: list[dict[str, Any]], fields: dict[str, Any], seconds: float, random_backbone: bool | None
) -> list[dict[str, Any]]:
    """The records of one (point, task) as stored: ``fields``, the key, each of the scorer's metric ``rows``, the
    seconds it took, when, by which rank, and whether image features came from a random backbone."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    extra = {"seconds": round(seconds, 4), "time": stamp, "rank": int(os.environ.get("RANK", 0))}
    extra["random_backbone"] = random_backbone
    return [{**fields, **key.fields(), **row, **extra} for row in rows]


def shard(items: list, rank: int | None = None, world_size: int | None = None) -> list:
    """This process's share of ``items`` (every ``world_size``-th from ``rank``; RANK/WORLD_SIZE by default)."""
    rank = int(os.environ.get("RANK", 0)) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise BadValueError(f"rank {rank} is outside world size {world_size} (check RANK and WORLD_SIZE)")
    return items[rank::world_size]
