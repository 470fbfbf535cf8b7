"""Feature extraction: pooling against the backbone's own hidden states, real images, resume, the black image."""

from __future__ import annotations

import csv
import itertools

import pytest
import torch
from PIL import Image

from babymerge.cli import main
from babymerge.errors import BabymergeError
from babymerge.features.backbone import Backbone, load_backbone, random_dinov2
from babymerge.features.extract import extract_features, image_features, partial_dir
from babymerge.features.images import list_images
from babymerge.features.store import RANDOM_BACKBONE_WARNING, FeatureFile


def random_images(count: int, seed: int = 0) -> list[Image.Image]:
    gen = torch.Generator().manual_seed(seed)
    sizes = [(90, 70), (64, 64), (120, 80), (70, 100)]
    return [
        Image.fromarray(torch.randint(0, 256, (h, w, 3), generator=gen, dtype=torch.uint8).numpy())
        for (w, h), _ in zip(itertools.cycle(sizes), range(count))
    ]


def reference_patches(backbone: Backbone, images: list[Image.Image], prefix: int = 1) -> torch.Tensor:
    """Hidden layer -2 without CLS (and registers), straight from the backbone."""
    pixels = backbone.processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        hidden = backbone.model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
    return hidden[:, prefix:]


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    return random_dinov2(seed=0)


@pytest.fixture(scope="module")
def saved_backbone(tmp_path_factory) -> str:
    """A tiny random DINOv2 saved with its image processor, to be loaded by path like any Hub backbone."""
    path = tmp_path_factory.mktemp("dinov2")
    tiny = random_dinov2(seed=3)
    tiny.model.save_pretrained(path)
    tiny.processor.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def flickr_captions(shared_data, tmp_path_factory):
    """A captions file naming 8 real Flickr8k images, with ``images/`` beside it (a link to the shared folder)."""
    source = shared_data / "flickr8k_1k"
    folder = tmp_path_factory.mktemp("flickr")
    (folder / "images").symlink_to(source / "images", target_is_directory=True)
    with open(source / "captions.txt", newline="") as handle:
        rows = list(itertools.islice(csv.DictReader(handle), 40))
    with open(folder / "captions.txt", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    names = list(dict.fromkeys(row["image"] for row in rows))
    assert len(names) == 8
    return folder / "captions.txt", names


def test_mean_pooling_is_the_mean_of_the_patch_tokens(backbone):
    images = random_images(3)
    ours, grid = image_features(backbone, images, pooling="mean")
    expected = reference_patches(backbone, images).mean(dim=1, keepdim=True)
    assert grid == "4x4" and ours.shape == (3, 1, 32)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-6)


def test_grid_pooling_shapes_and_blocks(backbone):
    images = random_images(2)
    patches = reference_patches(backbone, images)  # 4 x 4 grid, row-major
    grid2, _ = image_features(backbone, images, pooling="grid", grid_size=2)
    grid4, _ = image_features(backbone, images, pooling="grid", grid_size=4)
    every, _ = image_features(backbone, images, pooling="patches")
    assert grid2.shape == (2, 4, 32) and grid4.shape == (2, 16, 32) and every.shape == (2, 16, 32)
    blocks = patches.reshape(2, 4, 4, 32)
    for token, (r, c) in enumerate([(0, 0), (0, 2), (2, 0), (2, 2)]):
        expected = blocks[:, r : r + 2, c : c + 2].mean(dim=(1, 2))
        torch.testing.assert_close(grid2[:, token], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(grid4, patches, rtol=0, atol=1e-6)
    torch.testing.assert_close(every, patches, rtol=0, atol=1e-6)


def test_register_tokens_are_dropped():
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    config = Dinov2WithRegistersConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, image_size=56, num_register_tokens=3
    )
    torch.manual_seed(0)
    registers = Backbone(Dinov2WithRegistersModel(config).eval(), random_dinov2().processor, "registers")
    images = random_images(2)
    ours, _ = image_features(registers, images, pooling="patches")
    torch.testing.assert_close(ours, reference_patches(registers, images, prefix=4), rtol=0, atol=1e-6)


def test_black_image_features(backbone):
    black = Image.new("RGB", (300, 200), (0, 0, 0))
    expected = reference_patches(backbone, [black]).mean(dim=1)
    ours, _ = image_features(backbone, [Image.new("RGB", (224, 224))], pooling="mean")
    torch.testing.assert_close(ours[:, 0], expected, rtol=0, atol=1e-6)


def test_real_flickr_images_with_a_backbone_loaded_by_path(flickr_captions, saved_backbone, tmp_path, capsys):
    captions, names = flickr_captions
    out = tmp_path / "feats.safetensors"
    code = main(["features", str(captions), "--out", str(out), "--backbone", saved_backbone, "--batch-size", "3"])
    assert code == 0
    feats = FeatureFile.load(out)
    assert feats.image_ids == names and feats.features.shape == (8, 1, 32) and feats.black.shape == (1, 32)
    assert feats.meta["backbone"] == saved_backbone and feats.meta["layer"] == "-2"
    assert feats.meta["pooling"] == "mean" and feats.meta["random_backbone"] == "false"
    backbone = load_backbone(saved_backbone)
    images = [Image.open(captions.parent / "images" / name).convert("RGB") for name in names[5:7]]
    expected = reference_patches(backbone, images).mean(dim=1)
    torch.testing.assert_close(feats.features[5:7, 0], expected, rtol=0, atol=1e-5)
    black = reference_patches(backbone, [Image.new("RGB", (64, 64))]).mean(dim=1)
    torch.testing.assert_close(feats.black, black, rtol=0, atol=1e-5)
    assert not torch.allclose(feats.features[0], feats.black)
    assert not partial_dir(out).exists()


def interrupt_on_call(backbone: Backbone, calls: list, at: set[int]) -> Backbone:
    """Make the backbone raise KeyboardInterrupt (as Ctrl-C would) on the given forward calls; count calls."""
    forward = backbone.model.forward

    def interrupting_forward(*args, **kwargs):
        calls.append(1)
        if len(calls) in at:
            raise KeyboardInterrupt
        return forward(*args, **kwargs)

    backbone.model.forward = interrupting_forward
    return backbone


def test_resume_after_interruption_gives_the_same_file(flickr_captions, tmp_path):
    captions, _ = flickr_captions
    sources = list_images(captions)
    whole = extract_features(sources, tmp_path / "whole.safetensors", random_dinov2(1), batch_size=3, progress=False)

    calls, interrupt_at = [], {3}  # call 1: black image, call 2: batch 1, call 3: batch 2
    backbone = interrupt_on_call(random_dinov2(1), calls, interrupt_at)
    out = tmp_path / "resumed.safetensors"
    with pytest.raises(KeyboardInterrupt):
        extract_features(sources, out, backbone, batch_size=3, progress=False)
    assert not out.exists()
    assert sorted(p.name for p in partial_dir(out).glob("batch_*")) == ["batch_000000.safetensors"]

    calls.clear()
    interrupt_at.clear()
    resumed = extract_features(sources, out, backbone, batch_size=3, progress=False)
    assert len(calls) == 3  # the black image and batches 2 and 3; batch 1 was kept
    again = FeatureFile.load(out)
    assert again.image_ids == whole.image_ids and again.meta == FeatureFile.load(tmp_path / "whole.safetensors").meta
    assert torch.equal(again.features, whole.features) and torch.equal(again.black, whole.black)
    assert torch.equal(resumed.features, whole.features)
    assert not partial_dir(out).exists()


def test_resume_refuses_other_settings(flickr_captions, tmp_path):
    captions, _ = flickr_captions
    sources = list_images(captions)
    out = tmp_path / "f.safetensors"
    with pytest.raises(KeyboardInterrupt):
        extract_features(sources, out, interrupt_on_call(random_dinov2(0), [], {3}), batch_size=3, progress=False)
    with pytest.raises(BabymergeError, match=r"f.safetensors.partial: holds an interrupted run with other settings"):
        extract_features(sources, out, random_dinov2(0), batch_size=4, progress=False)
    assert len(list(partial_dir(out).glob("batch_*"))) == 1


def test_bad_options_write_nothing(flickr_captions, tmp_path):
    captions, _ = flickr_captions
    out = tmp_path / "f.safetensors"
    with pytest.raises(BabymergeError, match="--grid-size 5 is larger than the backbone's 4x4 patch grid"):
        extract_features(list_images(captions), out, random_dinov2(0), pooling="grid", grid_size=5, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_random_backbone_is_recorded_and_announced(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, image in enumerate(random_images(3)):
        image.save(folder / f"im{i}.png")
    out = tmp_path / "f.safetensors"
    assert main(["features", str(folder), "--out", str(out), "--random-backbone", "--pooling", "grid"]) == 0
    assert RANDOM_BACKBONE_WARNING in capsys.readouterr().err
    feats = FeatureFile.load(out)
    assert feats.image_ids == ["im0.png", "im1.png", "im2.png"] and feats.features.shape == (3, 4, 32)
    assert feats.meta["random_backbone"] == "true" and feats.meta["grid_size"] == "2"


@pytest.mark.parametrize("name", ["../outside.jpg", "images/../../outside.jpg", "/tmp/outside.jpg"])
def test_caption_ids_stay_inside_the_image_folder(tmp_path, name):
    (tmp_path / "data").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.jpg")
    captions = tmp_path / "data" / "captions.csv"
    captions.write_text(f"image,caption\n{name},a cat\n")
    with pytest.raises(BabymergeError) as info:
        list_images(captions)
    message = str(info.value)
    assert "\n" not in message and repr(name) in message and "outside the image folder" in message
