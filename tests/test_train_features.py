"""A feature file made with another backbone or pooling than the checkpoint was initialised with is refused in
one line by `train` and by the evaluation model (image tasks), unless allowed by name."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import synthetic_corpus

from babymerge.errors import BabymergeError
from babymerge.features.model_fields import model_fields
from babymerge.features.store import FeatureFile, mismatch
from babymerge.training import TrainConfig, train
from babymerge.training import run as run_module
from babymerge.training.init import init_model, save_checkpoint

IMAGES = [f"img{i}.jpg" for i in range(6)]


def feature_file(seed: int, **meta: str) -> FeatureFile:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(len(IMAGES), 1, 8, generator=generator)
    return FeatureFile(IMAGES, features, torch.zeros(1, 8), {"backbone": f"random-tiny-dinov2-seed{seed}", **meta})


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("features")
    for seed in (0, 1):
        feature_file(seed).save(root / f"seed{seed}.safetensors")
    own = FeatureFile.load(root / "seed0.safetensors")
    save_checkpoint(init_model(tiny_tokenizer, "tiny", seed=0, **model_fields(own)), tiny_tokenizer, root / "init")
    captions = root / "captions.csv"
    captions.write_text("image,caption\n" + "".join(f"{i},a dog runs on the grass {i}\n" for i in IMAGES))
    return root, synthetic_corpus(root / "corpus"), captions


def config(setup, features: str, **fields) -> TrainConfig:
    root, corpus, captions = setup
    base = dict(mode="multimodal", init=root / "init", text=corpus, captions=captions, features=root / features)
    base |= dict(out=root / f"out-{features}", max_length=32, batch_size=4, max_steps=2, text_ratio=None)
    return TrainConfig(**base, cache_dir=root / "cache", milestone_unit=100_000, progress=False, **fields)


def test_mismatch_names_backbone_pooling_and_grid():
    class Config:
        vision_backbone, image_pooling, image_grid_size = "dinov2-large", "grid", 2

    assert mismatch({"backbone": "dinov2-large", "pooling": "grid", "grid_size": "2"}, Config) is None
    assert mismatch({"pooling": "grid", "grid_size": "2"}, Config) is None  # an unrecorded backbone is not compared
    assert "backbone 'dinov2-small'" in mismatch(
        {"backbone": "dinov2-small", "pooling": "grid", "grid_size": "2"}, Config
    )
    assert "grid_size 3 where the checkpoint was built for 2" in mismatch({"pooling": "grid", "grid_size": "3"}, Config)
    assert "pooling 'mean' where the checkpoint was built for 'grid'" in mismatch({}, Config)


def test_train_refuses_features_of_another_backbone_before_any_work(setup, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(run_module, "build_dataset", lambda *a, **k: pytest.fail("data was prepared"))
        with pytest.raises(BabymergeError) as refused:
            train(config(setup, "seed1.safetensors"))
    message = str(refused.value)
    assert "\n" not in message and "--allow-feature-mismatch" in message
    assert "'random-tiny-dinov2-seed1' where the checkpoint was built for 'random-tiny-dinov2-seed0'" in message
    assert not config(setup, "seed1.safetensors").out.exists()
    out = train(config(setup, "seed1.safetensors", allow_feature_mismatch=True))
    assert json.loads((out / "checkpoints/final/babymerge_training.json").read_text())["global_step"] == 2
    train(config(setup, "seed0.safetensors"))  # the init's own features pass


def test_eval_refuses_features_of_another_backbone(setup, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    from babymerge.evaluation.lm import BabyLlavaLM

    root = setup[0]
    model = AutoModelForCausalLM.from_pretrained(root / "init")
    args = dict(pretrained=model, tokenizer=tiny_tokenizer, batch_size=1, device="cpu")
    with pytest.raises(
        BabymergeError, match=r"seed1.safetensors: backbone 'random-tiny-dinov2-seed1' where"
    ) as refused:
        BabyLlavaLM(features=str(root / "seed1.safetensors"), **args)
    assert "\n" not in str(refused.value) and "allow_feature_mismatch=true" in str(refused.value)
    assert BabyLlavaLM(features=str(root / "seed1.safetensors"), allow_feature_mismatch="true", **args).features
    assert BabyLlavaLM(features=str(root / "seed0.safetensors"), **args).features


def test_babymerge_eval_refuses_and_allows_by_flag(setup, layout, tmp_path, capsys):
    from babymerge.cli import main

    root = setup[0]
    args = ["eval", str(root / "init"), "--tasks", "babylm_winoground", "--features", str(root / "seed1.safetensors")]
    args += ["--data-dir", str(layout), "--out", str(tmp_path / "results"), "--limit", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "backbone 'random-tiny-dinov2-seed1' where the checkpoint was built for" in err
    assert main([*args, "--allow-feature-mismatch"]) == 2  # past the check: these features lack Winoground's images
    err = capsys.readouterr().err
    assert "where the checkpoint was built for" not in err and "is not in the feature file" in err


def test_babymerge_eval_checks_the_features_before_any_model_loads(setup, tmp_path, monkeypatch):
    """``check_inputs`` reads the feature file's header and the checkpoint's config.json only."""
    from babymerge.evaluation import lm, run

    data = tmp_path / "data" / "extra_eval" / "caption_matching"
    data.mkdir(parents=True)
    (data / "captions.txt").write_text("image,caption\n" + "".join(f"{i},a dog runs\n" for i in IMAGES))
    root = setup[0]
    monkeypatch.setattr(lm.BabyLlavaLM, "__init__", lambda *a, **k: pytest.fail("a model was loaded"))
    args = dict(data_dir=str(tmp_path / "data"), features=str(root / "seed1.safetensors"))
    with pytest.raises(BabymergeError, match=r"seed1.safetensors: backbone 'random-tiny-dinov2-seed1' where"):
        run.check_inputs(str(root / "init"), "babylm_caption_matching_fast", **args)
    assert run.check_inputs(str(root / "init"), "babylm_caption_matching_fast", **args, allow_feature_mismatch=True)
    assert run.check_inputs(str(root / "init"), "babylm_caption_matching_fast", **{**args, "features": None})
