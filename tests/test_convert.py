"""`babymerge convert`: babyllava <-> the authors' reference Llava layout, bit for bit, with clear errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, Dinov2Config, Dinov2Model, LlavaConfig

from babymerge.cli import main
from babymerge.features.store import FeatureFile

TEXT = ["The cat sees a dog.", "A red ball."]


def reference_name(key: str) -> str | None:
    """The authors' names, written out here independently of babymerge.convert.reference."""
    if key == "model.black_image_features":
        return None
    if key == "lm_head.weight":
        return "language_model.lm_head.weight"
    for ours, theirs in (
        ("model.language_model.", "language_model.model."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
    ):
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    raise AssertionError(key)


def tiny_dinov2() -> Dinov2Model:
    torch.manual_seed(7)
    return Dinov2Model(
        Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2, image_size=28)
    )


@pytest.fixture(scope="module")
def original(make_checkpoint):
    torch.manual_seed(11)
    return make_checkpoint(11, black_features=torch.randn(1, 32))


@pytest.fixture(scope="module")
def reference(original, tmp_path_factory):
    """A reference-layout checkpoint built by hand: renamed tensors, a vision tower, a LlavaConfig, the tokenizer."""
    folder = tmp_path_factory.mktemp("reference")
    weights = load_file(original / "model.safetensors")
    tensors = {reference_name(k): v for k, v in weights.items() if reference_name(k)}
    tower = tiny_dinov2()
    tensors.update({f"vision_tower.{k}": v.clone() for k, v in tower.state_dict().items()})
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    baby = json.loads((original / "config.json").read_text())
    LlavaConfig(
        text_config=baby["text_config"],
        vision_config=tower.config.to_dict(),
        image_token_index=baby["image_token_index"],
        image_seq_length=1,
        projector_hidden_act="gelu",
    ).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(original / name, folder / name)
    black = FeatureFile([], torch.zeros(0, 1, 32), weights["model.black_image_features"], {"pooling": "mean"})
    black.save(folder.parent / "black.safetensors")
    return folder


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert torch.equal(a[key].view(torch.uint8), b[key].view(torch.uint8)), key


def logits(path, **kwargs) -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    with torch.no_grad():
        return model(**tok(TEXT, return_tensors="pt", padding=True), **kwargs).logits


def test_reference_to_babyllava_is_bitwise_and_computes_the_same(original, reference, tmp_path, capsys):
    out = tmp_path / "baby"
    black = reference.parent / "black.safetensors"
    assert main(["convert", str(reference), str(out), "--to", "babyllava", "--black-features", str(black)]) == 0
    assert "dropped the vision tower" in capsys.readouterr().err
    assert_bitwise_equal(load_file(out / "model.safetensors"), load_file(original / "model.safetensors"))
    assert (out / "tokenizer.json").read_bytes() == (original / "tokenizer.json").read_bytes()
    assert torch.equal(logits(out), logits(original))


def test_babyllava_matches_the_reference_forward(reference, tmp_path):
    """The authors' forward, written here with transformers' own Llava modules: pooled features -> projector."""
    from transformers import LlavaForConditionalGeneration

    out = tmp_path / "baby"
    black_file = reference.parent / "black.safetensors"
    assert main(["convert", str(reference), str(out), "--to", "babyllava", "--black-features", str(black_file)]) == 0
    llava = LlavaForConditionalGeneration.from_pretrained(reference).eval()
    tok = AutoTokenizer.from_pretrained(reference)
    batch = tok(TEXT, return_tensors="pt", padding=True)
    black = FeatureFile.load(black_file).black
    with torch.no_grad():
        embeds = llava.get_input_embeddings()(batch["input_ids"])
        image = batch["input_ids"] == llava.config.image_token_index
        embeds[image] = llava.model.multi_modal_projector(black).expand(int(image.sum()), -1)
        hidden = llava.model.language_model(inputs_embeds=embeds, attention_mask=batch["attention_mask"])
        expected = llava.lm_head(hidden.last_hidden_state)
    torch.testing.assert_close(logits(out), expected, rtol=0, atol=1e-5)


def test_babyllava_to_reference_and_back_is_bitwise(original, tmp_path):
    ref, back = tmp_path / "ref", tmp_path / "back"
    assert main(["convert", str(original), str(ref), "--to", "reference"]) == 0
    weights = load_file(original / "model.safetensors")
    written = load_file(ref / "model.safetensors")
    assert_bitwise_equal(written, {reference_name(k): v for k, v in weights.items() if reference_name(k)})
    config = json.loads((ref / "config.json").read_text())
    assert config["model_type"] == "llava" and config["image_seq_length"] == 1
    assert config["text_config"]["model_type"] == "llama" and config["vision_config"]["model_type"] == "dinov2"
    assert main(["convert", str(ref), str(back), "--to", "babyllava"]) == 0
    assert_bitwise_equal(load_file(back / "model.safetensors"), weights)
    ours, theirs = json.loads((original / "config.json").read_text()), json.loads((back / "config.json").read_text())
    assert {k: v for k, v in ours.items() if k != "transformers_version"} == {
        k: v for k, v in theirs.items() if k != "transformers_version"
    }


def test_vision_tower_is_attached_and_loads_in_transformers_llava(original, tmp_path):
    from transformers import LlavaForConditionalGeneration

    tower_dir, ref = tmp_path / "tower", tmp_path / "ref"
    tower = tiny_dinov2()
    tower.save_pretrained(tower_dir)
    assert main(["convert", str(original), str(ref), "--to", "reference", "--vision-tower", str(tower_dir)]) == 0
    llava = LlavaForConditionalGeneration.from_pretrained(ref)
    for key, value in tower.state_dict().items():
        assert torch.equal(llava.model.vision_tower.state_dict()[key], value), key
    weights = load_file(original / "model.safetensors")
    assert torch.equal(llava.lm_head.weight, weights["lm_head.weight"])


def test_missing_black_features_are_zeros_with_a_warning(reference, tmp_path, capsys):
    out = tmp_path / "baby"
    assert main(["convert", str(reference), str(out), "--to", "babyllava"]) == 0
    assert "black image's features are ZEROS" in capsys.readouterr().err
    assert not load_file(out / "model.safetensors")["model.black_image_features"].any()


def break_reference(reference, tmp_path, edit) -> str:
    broken = tmp_path / "broken"
    shutil.copytree(reference, broken)
    tensors = load_file(broken / "model.safetensors")
    edit(tensors)
    save_file(tensors, broken / "model.safetensors", metadata={"format": "pt"})
    return str(broken)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            lambda t: t.update({"multi_modal_projector.linear_2.bias": torch.zeros(5)}),
            "multi_modal_projector.linear_2.bias",
        ),
        (lambda t: t.update({"language_model.extra.weight": torch.zeros(2)}), "language_model.extra.weight"),
        (lambda t: t.pop("language_model.model.norm.weight"), "model.language_model.norm.weight"),
    ],
)
def test_bad_tensors_are_named(reference, tmp_path, capsys, edit, named):
    broken = break_reference(reference, tmp_path, edit)
    out = tmp_path / "out"
    assert main(["convert", broken, str(out), "--to", "babyllava"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("babymerge convert: error:") and named in err[-1], err
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_wrong_direction_names_the_config(original, tmp_path, capsys):
    assert main(["convert", str(original), str(tmp_path / "x"), "--to", "babyllava"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "config.json: model_type is 'babyllava'; expected 'llava'" in line


def test_the_modeling_package_imports_no_stage_of_babymerge():
    """modeling's files are copied into checkpoints: the converter, which reads feature files and checkpoint
    folders, lives in its own stage (``babymerge.convert``); modeling reaches no further than ``errors``."""
    import ast
    from pathlib import Path

    import babymerge.modeling

    for file in Path(babymerge.modeling.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                assert node.module == "errors", f"{file.name} imports ..{node.module or ''}"
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            assert not any(str(n).startswith("babymerge") for n in names), f"{file.name} imports {names}"
