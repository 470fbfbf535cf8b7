"""The foundation commands end to end: init from a feature file, and bad input exiting 2 with one named line."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from babymerge.cli import main
from babymerge.features.store import RANDOM_BACKBONE_WARNING, FeatureFile


@pytest.fixture(scope="module")
def tokenizer_dir(tiny_tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer"
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    gen = torch.Generator().manual_seed(0)
    for i in range(3):
        pixels = torch.randint(0, 256, (60 + 10 * i, 80, 3), generator=gen, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"img{i}.jpg")
    return folder


def error_line(capsys, command: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith(f"babymerge {command}: error: "), lines
    return lines[-1]


def test_init_takes_everything_from_a_grid_feature_file(image_folder, tokenizer_dir, tmp_path, capsys):
    feats = tmp_path / "grid.safetensors"
    args = ["features", str(image_folder), "--out", str(feats), "--random-backbone", "--pooling", "grid"]
    assert main(args + ["--grid-size", "2"]) == 0
    out = tmp_path / "init"
    code = main(
        ["init", "--tokenizer", str(tokenizer_dir), "--out", str(out), "--preset", "tiny", "--features", str(feats)]
    )
    assert code == 0
    assert f"{feats}: {RANDOM_BACKBONE_WARNING}" in capsys.readouterr().err
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    config = model.config
    assert (config.image_pooling, config.image_grid_size, config.num_image_tokens) == ("grid", 2, 4)
    assert config.vision_feature_dim == 32 and config.vision_backbone == "random-tiny-dinov2-seed0"
    stored = FeatureFile.load(feats)
    assert torch.equal(load_file(out / "model.safetensors")["model.black_image_features"], stored.black)
    tok = AutoTokenizer.from_pretrained(out)
    batch = tok(["The cat sees a dog."], return_tensors="pt")
    assert batch["input_ids"][0, :5].tolist() == [1, 3, 3, 3, 3]
    with torch.no_grad():
        with_image = model(**batch, image_features=stored.get("img1.jpg")[None]).logits
        black = model(**batch).logits
    assert not torch.allclose(with_image, black)


def test_same_seed_gives_the_same_checkpoint(tokenizer_dir, tmp_path):
    for name in ("a", "b"):
        assert main(["init", "--tokenizer", str(tokenizer_dir), "--out", str(tmp_path / name), "--preset", "tiny"]) == 0
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unreadable_image_is_named(image_folder, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for image in image_folder.iterdir():
        (folder / image.name).symlink_to(image)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "f.safetensors"
    assert main(["features", str(folder), "--out", str(out), "--random-backbone"]) == 2
    assert "broken.jpg: unreadable image" in error_line(capsys, "features")
    assert not out.exists()
    (folder / "broken.jpg").unlink()  # fixing the input lets the same command run (nothing was extracted yet)
    assert main(["features", str(folder), "--out", str(out), "--random-backbone"]) == 0
    assert FeatureFile.load(out).image_ids == ["img0.jpg", "img1.jpg", "img2.jpg"]


def test_captions_naming_a_missing_image(tmp_path, capsys):
    (tmp_path / "captions.txt").write_text("image,caption\nnowhere.jpg,A dog runs .\n")
    assert main(["features", str(tmp_path / "captions.txt"), "--out", str(tmp_path / "f.safetensors")]) == 2
    assert "image 'nowhere.jpg' not found" in error_line(capsys, "features")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--random-backbone", "--pooling", "grid", "--grid-size", "9"], "--grid-size 9 is larger"),
        (["--random-backbone", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["--backbone", "no-such-org/no-such-backbone"], "no-such-org/no-such-backbone: not a local folder and not in"),
        (["--backbone", "./none"], "./none: no such folder (the backbone looks like a local path)"),
    ],
)
def test_feature_options_are_checked(image_folder, tmp_path, capsys, args, named):
    assert main(["features", str(image_folder), "--out", str(tmp_path / "f.safetensors"), *args]) == 2
    assert named in error_line(capsys, "features")


def test_missing_images_folder(tmp_path, capsys):
    assert main(["features", str(tmp_path / "absent"), "--out", str(tmp_path / "f.safetensors")]) == 2
    assert "absent: not found" in error_line(capsys, "features")


def test_init_errors_name_the_problem(tokenizer_dir, tmp_path, capsys):
    base = ["init", "--preset", "tiny", "--out", str(tmp_path / "x")]
    assert main([*base, "--tokenizer", str(tmp_path / "none")]) == 2
    assert "none: no tokenizer.json" in error_line(capsys, "init")

    bad = tmp_path / "bad.safetensors"
    FeatureFile(["a.jpg"], torch.zeros(1, 4, 8), torch.zeros(4, 8), {"pooling": "grid", "grid_size": "3"}).save(bad)
    assert main([*base, "--tokenizer", str(tokenizer_dir), "--features", str(bad)]) == 2
    assert "bad.safetensors: pooling 'grid' with grid_size='3' but 4 image tokens" in error_line(capsys, "init")

    mean4 = tmp_path / "mean4.safetensors"
    FeatureFile(["a.jpg"], torch.zeros(1, 4, 8), torch.zeros(4, 8), {"pooling": "mean"}).save(mean4)
    assert main([*base, "--tokenizer", str(tokenizer_dir), "--features", str(mean4)]) == 2
    assert "mean4.safetensors: pooling 'mean' but 4 image tokens" in error_line(capsys, "init")

    assert main([*base, "--tokenizer", str(tokenizer_dir), "--features", str(tmp_path / "gone.safetensors")]) == 2
    assert "gone.safetensors: feature file not found" in error_line(capsys, "init")
    assert not (tmp_path / "x").exists()


def test_convert_missing_input(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nothing"), str(tmp_path / "out"), "--to", "babyllava"]) == 2
    assert "nothing/config.json: not found" in error_line(capsys, "convert")


INTERNAL_BUG = """
import sys
import babymerge.training.tokenizer as stage
from babymerge.cli import main

def broken(*args, **kwargs):
    raise ValueError("internal bug")

stage.text_files = broken
sys.exit(main())
"""


def test_internal_bug_keeps_its_traceback(tmp_path):
    args = ["tokenizer", str(tmp_path), "--out", str(tmp_path / "tok")]
    result = subprocess.run([sys.executable, "-c", INTERNAL_BUG, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().endswith("ValueError: internal bug")


def test_user_error_is_one_line_with_exit_2(tmp_path, capsys):
    assert main(["tokenizer", str(tmp_path), "--out", str(tmp_path / "tok"), "--vocab-size", "10"]) == 2
    err = capsys.readouterr().err
    assert err == "babymerge tokenizer: error: --vocab-size must be at least 300 (256 bytes + specials), got 10\n"
    assert not (tmp_path / "tok").exists()
