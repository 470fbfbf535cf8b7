"""formats.checkpoint: one reader of checkpoint folders (single file or sharded) and one shape check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from babymerge.errors import BabymergeError
from babymerge.formats.checkpoint import INDEX, check_same_shapes, read_state, read_tensors, shapes, weight_files
from babymerge.merging.checks import MergeInputError, check_shapes, read_model
from babymerge.sweep.merge import BASE, TEXT


def sharded(source: Path, out: Path, change: dict[str, torch.Tensor] | None = None) -> Path:
    """``source``'s checkpoint re-saved as two shards with an index (tensors in ``change`` replaced)."""
    shutil.copytree(source, out, ignore=shutil.ignore_patterns("*.safetensors"))
    state = {**load_file(source / "model.safetensors"), **(change or {})}
    names = sorted(state)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, part in halves.items():
        save_file({n: state[n].contiguous() for n in part}, str(out / file), metadata={"format": "pt"})
    weight_map = {n: file for file, part in halves.items() for n in part}
    (out / INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return out


def test_sharded_folder_reads_like_the_single_file(models, tmp_path):
    single = models[BASE]
    folder = sharded(single, tmp_path / "sharded")
    save_file({"black": torch.zeros(1, 2)}, str(folder / "black_image.safetensors"))  # not a weight shard
    assert [f.name for f in weight_files(folder)] == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    assert shapes(read_tensors(folder)) == shapes(read_tensors(single))
    state, reference = read_state(folder), read_state(single)
    assert state.keys() == reference.keys() and all(torch.equal(state[k], reference[k]) for k in state)


def test_wrong_shape_in_a_shard_is_refused_by_the_one_check(models, tmp_path):
    name = "model.multi_modal_projector.linear_1.weight"
    wide = load_file(models[TEXT] / "model.safetensors")[name]
    folder = sharded(models[TEXT], tmp_path / "wide", {name: torch.zeros(wide.shape[0], wide.shape[1] + 1)})
    with pytest.raises(MergeInputError) as info:
        check_shapes([read_model(models[BASE]), read_model(folder)])
    message = str(info.value)
    assert message.startswith(f"{folder}: tensor {name} has shape") and str(models[BASE]) in message
    assert "\n" not in message


def test_one_shape_check_names_missing_and_unexpected_tensors():
    with pytest.raises(BabymergeError, match=r"^b: tensor y is missing \(present in a\)$"):
        check_same_shapes({"x": (1,), "y": (2,)}, {"x": (1,)}, "b", "a")
    with pytest.raises(BabymergeError, match=r"^b: tensor ref\.z is unexpected"):
        check_same_shapes({"x": (1,)}, {"x": (1,), "z": (2,)}, "b", "a", names={"z": "ref.z"})
    check_same_shapes({"x": (1, 2)}, {"x": [1, 2]}, "b", "a")


def test_bad_folders_are_one_line(models, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BabymergeError, match=f"^{empty}: no safetensors weights"):
        read_tensors(empty)
    folder = sharded(models[BASE], tmp_path / "cut")
    shard = folder / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(BabymergeError, match=f"^{shard}: truncated safetensors file"):
        read_tensors(folder)
    (folder / INDEX).write_text("{not json")
    with pytest.raises(BabymergeError, match="unreadable shard index"):
        weight_files(folder)
