"""The feature file is the contract between feature extraction, training and evaluation."""

import pytest
import torch

from babymerge.errors import BabymergeError
from babymerge.features.store import FeatureFile


def test_round_trip(tmp_path):
    feats = FeatureFile(["a.jpg", "b.jpg"], torch.randn(2, 1, 8), torch.randn(1, 8), {"pooling": "mean"})
    feats.save(tmp_path / "f.safetensors")
    back = FeatureFile.load(tmp_path / "f.safetensors")
    assert back.image_ids == ["a.jpg", "b.jpg"] and back.meta["pooling"] == "mean"
    assert torch.equal(back.get("b.jpg"), feats.features[1]) and torch.equal(back.black, feats.black)
    assert [p.name for p in tmp_path.iterdir()] == ["f.safetensors"]


def test_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(BabymergeError, match="bad.safetensors: not a readable safetensors"):
        FeatureFile.load(bad)
    with pytest.raises(BabymergeError, match="'c.jpg' is not in the feature file"):
        FeatureFile(["a.jpg"], torch.zeros(1, 1, 2), torch.zeros(1, 2)).get("c.jpg")


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    import os

    from babymerge.io import atomic_dir

    mask = os.umask(0o022)
    try:
        FeatureFile(["a"], torch.zeros(1, 1, 2), torch.zeros(1, 2)).save(tmp_path / "f.safetensors")
        with atomic_dir(tmp_path / "out") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(mask)
    assert (tmp_path / "f.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "out" / "x").stat().st_mode & 0o777 == 0o644


def test_image_found_by_id_else_by_file_stem():
    ids = ["flickr/a.jpg", "a.png", "b.jpg"]
    feats = FeatureFile(ids, torch.arange(3.0).view(3, 1, 1), torch.zeros(1, 1))
    assert feats.row("a.png") == 1  # the exact id wins over another file's stem
    assert feats.row("b") == 2 and feats.row("other/b.jpeg") == 2  # captions may name the file differently
    assert feats.row("c.jpg") is None
    assert torch.equal(feats.get("b"), feats.features[2])


def test_random_backbone_flag_travels_with_the_file(tmp_path):
    FeatureFile(["a"], torch.zeros(1, 1, 2), torch.zeros(1, 2), {"random_backbone": "true"}).save(tmp_path / "r")
    FeatureFile(["a"], torch.zeros(1, 1, 2), torch.zeros(1, 2)).save(tmp_path / "p")
    assert FeatureFile.load(tmp_path / "r").random_backbone and not FeatureFile.load(tmp_path / "p").random_backbone
