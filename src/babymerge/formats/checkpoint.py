"""Checkpoint folders: ``config.json`` beside safetensors weights, one file or shards, as transformers saves them.

Policy for every reader: the weights are the shards that ``model.safetensors.index.json`` names (read through
mergekit's ``ShardedTensorIndex``, the index mergekit itself merges from), else ``model.safetensors``, else
every ``*.safetensors`` file of the folder (shards without an index). Tensor names, shapes and dtypes come
from the safetensors headers; a truncated or unreadable file is one error naming it. Two checkpoints fit
together when they hold the same tensor names with the same shapes (:func:`check_same_shapes`, the one shape
check).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BabymergeError

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
MAX_HEADER_BYTES = 100_000_000


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: str
    file: Path


def read_safetensors_header(file: Path) -> dict[str, TensorInfo]:
    """Tensor names, shapes and dtypes from a safetensors header; fails on unreadable or truncated files."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as handle:
            raw = handle.read(8)
            if len(raw) != 8:
                raise BabymergeError(f"{file}: truncated safetensors file ({size} bytes, no header)")
            (length,) = struct.unpack("<Q", raw)
            if length > min(size - 8, MAX_HEADER_BYTES):
                raise BabymergeError(f"{file}: truncated or unreadable safetensors file (header of {length} bytes)")
            header = json.loads(handle.read(length))
    except OSError as error:
        raise BabymergeError(f"{file}: cannot read safetensors file ({error.strerror})") from error
    except (ValueError, UnicodeDecodeError) as error:
        raise BabymergeError(f"{file}: unreadable safetensors header ({error})") from error
    header.pop("__metadata__", None)
    end = 0
    out: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        end = max(end, entry["data_offsets"][1])
        out[name] = TensorInfo(tuple(entry["shape"]), entry["dtype"], file)
    if 8 + length + end != size:
        raise BabymergeError(f"{file}: truncated safetensors file ({size} bytes; header describes {8 + length + end})")
    return out


def weight_files(folder: str | os.PathLike) -> list[Path]:
    """The safetensors files holding a checkpoint's weights, sorted (see the module's policy)."""
    folder = Path(folder)
    if (folder / INDEX).is_file():
        from mergekit.io.lazy_tensor_loader import ShardedTensorIndex

        try:
            index = ShardedTensorIndex.from_disk(str(folder))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise BabymergeError(f"{folder / INDEX}: unreadable shard index ({error})") from None
        return sorted(folder / shard.filename for shard in index.shards)
    if (folder / SINGLE).is_file():
        return [folder / SINGLE]
    return sorted(folder.glob("*.safetensors"))


def read_tensors(folder: str | os.PathLike) -> dict[str, TensorInfo]:
    """Name -> shape, dtype and file of every tensor of a checkpoint folder (headers only)."""
    files = weight_files(folder)
    if not files:
        raise BabymergeError(f"{folder}: no safetensors weights ({SINGLE}, {INDEX} or *.safetensors)")
    out: dict[str, TensorInfo] = {}
    for file in files:
        out.update(read_safetensors_header(file))
    return out


def read_state(folder: str | os.PathLike) -> dict[str, Any]:
    """Every tensor of a checkpoint folder, as stored (checked headers first)."""
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    for file in sorted({info.file for info in read_tensors(folder).values()}):
        state.update(load_file(file))
    return state


def check_same_shapes(
    expected: Mapping[str, tuple[int, ...]],
    found: Mapping[str, tuple[int, ...]],
    where: str | os.PathLike,
    reference: str | os.PathLike,
    *,
    names: Mapping[str, str] | None = None,
) -> None:
    """``found`` (from ``where``) holds exactly ``expected``'s tensor names (from ``reference``) with the same
    shapes; else one error naming the first tensor, as ``names`` maps it back for the user."""
    shown = names or {}
    missing = sorted(set(expected) - set(found))
    if missing:
        more = f" ({len(missing)} missing)" if len(missing) > 1 else ""
        raise BabymergeError(
            f"{where}: tensor {shown.get(missing[0], missing[0])} is missing{more} (present in {reference})"
        )
    extra = sorted(set(found) - set(expected))
    if extra:
        raise BabymergeError(f"{where}: tensor {shown.get(extra[0], extra[0])} is unexpected (absent from {reference})")
    for name in sorted(found):
        if tuple(found[name]) != tuple(expected[name]):
            raise BabymergeError(
                f"{where}: tensor {shown.get(name, name)} has shape {tuple(found[name])}; "
                f"expected {tuple(expected[name])} as in {reference}"
            )


def shapes(tensors: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Name -> shape of loaded tensors or of :class:`TensorInfo` entries."""
    return {name: tuple(value.shape) for name, value in tensors.items()}
