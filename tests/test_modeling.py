"""The babyllava model: implicit black image, alignment, Auto classes, loading without babymerge."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

from babymerge.modeling import BabyLlavaForConditionalGeneration


def test_black_image_is_the_default(make_checkpoint):
    path = make_checkpoint(1)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    model.model.black_image_features.normal_()
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok(["The cat sees a dog.", "A red ball."], return_tensors="pt", padding=True)
    implicit = model(**ids).logits
    explicit = model(**ids, image_features=model.model.black_image_features.expand(2, 1, -1)).logits
    other = model(**ids, image_features=torch.randn(2, 1, model.config.vision_feature_dim)).logits
    assert implicit.shape[:2] == ids["input_ids"].shape
    assert torch.equal(implicit, explicit)
    assert not torch.allclose(implicit, other)


def test_text_only_rows_ignore_image_features(make_checkpoint):
    model = AutoModelForCausalLM.from_pretrained(make_checkpoint(1)).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    feats = torch.randn(1, 1, model.config.vision_feature_dim)
    assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids, image_features=feats).logits)


def test_bad_image_features_name_the_tensor(make_checkpoint):
    model = AutoModelForCausalLM.from_pretrained(make_checkpoint(1)).eval()
    tok = AutoTokenizer.from_pretrained(make_checkpoint(1))
    ids = tok(["The cat."], return_tensors="pt")
    with pytest.raises(ValueError, match=r"image_features has shape \(1, 1, 7\)"):
        model(**ids, image_features=torch.randn(1, 1, 7))


def test_auto_classes(make_checkpoint):
    path = make_checkpoint(2)
    assert isinstance(AutoModelForImageTextToText.from_pretrained(path), BabyLlavaForConditionalGeneration)
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "babyllava"
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModelForCausalLM", "AutoModelForImageTextToText"}
    assert (path / "modeling_babyllava.py").exists() and (path / "configuration_babyllava.py").exists()


def test_generate_runs(make_checkpoint):
    path = make_checkpoint(3)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok(["The cat"], return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape == (1, ids["input_ids"].shape[1] + 4)


LOAD_WITHOUT_BABYMERGE = """
import sys, json, torch
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "babymerge" or name.startswith("babymerge."):
            raise ImportError("babymerge is blocked in this process")
sys.meta_path.insert(0, Block())
from transformers import AutoModelForCausalLM, AutoTokenizer
path = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()
assert "babymerge" not in type(model).__module__, type(model).__module__
tok = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
ids = tok(["The cat sees a dog."], return_tensors="pt")
with torch.no_grad():
    print(json.dumps(model(**ids).logits[0, -1, :5].tolist()))
"""


def test_loads_in_fresh_process_without_babymerge(make_checkpoint):
    path = make_checkpoint(4)
    out = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_BABYMERGE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    remote = torch.tensor(json.loads(out.stdout.strip().splitlines()[-1]))
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    with torch.no_grad():
        local = model(**tok(["The cat sees a dog."], return_tensors="pt")).logits[0, -1, :5]
    torch.testing.assert_close(remote, local, rtol=0, atol=1e-6)
