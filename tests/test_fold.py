"""LoRA training through peft and ``babymerge fold``: the adapter folded into a full babyllava folder."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from helpers import synthetic_corpus
from safetensors.torch import load_file

from babymerge.cli import main
from babymerge.features.store import FeatureFile
from babymerge.training import TrainConfig, fold_adapter, train


def lora_run(tmp_path, make_checkpoint):
    """A multimodal LoRA adaptation of a (tiny, random) text-only checkpoint on synthetic captions."""
    init = make_checkpoint(seed=3)
    features = FeatureFile([f"img{i}.jpg" for i in range(8)], torch.randn(8, 1, 32), torch.zeros(1, 32))
    features.save(tmp_path / "features.safetensors")
    captions = tmp_path / "captions.csv"
    words = "a dog cat runs sleeps on the red blue ball tree".split()
    lines = [f"img{i % 8}.jpg,{' '.join(words[(i + k) % len(words)] for k in range(6))} ." for i in range(40)]
    captions.write_text("image,caption\n" + "\n".join(lines) + "\n")
    config = TrainConfig(
        mode="multimodal",
        init=init,
        text=synthetic_corpus(tmp_path / "text"),
        captions=captions,
        features=tmp_path / "features.safetensors",
        out=tmp_path / "run",
        lora=True,
        lora_r=4,
        max_length=32,
        batch_size=8,
        max_steps=12,
        learning_rate=5e-3,
        logging_steps=4,
        milestone_unit=100,
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    return init, train(config)


def test_lora_checkpoint_folds_into_a_full_model(tmp_path, make_checkpoint):
    init, run = lora_run(tmp_path, make_checkpoint)
    adapter = run / "checkpoints" / "final"
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "model.safetensors").exists()
    assert len([p for p in (run / "checkpoints").iterdir() if p.name != "final"]) >= 1
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(init.resolve())

    out = fold_adapter(adapter, tmp_path / "folded")
    base, lora, folded = (
        load_file(p)
        for p in (init / "model.safetensors", adapter / "adapter_model.safetensors", out / "model.safetensors")
    )
    assert folded.keys() == base.keys()
    # W = W0 + (alpha / r) B A, computed here from the adapter's tensors
    name = "model.language_model.layers.0.self_attn.q_proj"
    a = next(v for k, v in lora.items() if name in k and "lora_A" in k)
    b = next(v for k, v in lora.items() if name in k and "lora_B" in k)
    expected = base[f"{name}.weight"] + (config["lora_alpha"] / config["r"]) * b @ a
    assert torch.allclose(folded[f"{name}.weight"], expected, atol=1e-6)
    assert not torch.equal(folded[f"{name}.weight"], base[f"{name}.weight"])
    # the projector was trained in full (modules_to_save); embeddings and head are the base's
    projector = next(v for k, v in lora.items() if "multi_modal_projector" in k and "linear_1.weight" in k)
    assert torch.equal(folded["model.multi_modal_projector.linear_1.weight"], projector)
    assert torch.equal(folded["lm_head.weight"], base["lm_head.weight"])

    # the folded folder loads alone and computes what base + adapter compute
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[1, 3, 10, 11, 12, 13]])
    feats = torch.randn(1, 1, 32)
    with torch.no_grad():
        unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(init), adapter)
        expected_logits = unmerged(input_ids=ids, image_features=feats).logits
    torch.save({"ids": ids, "feats": feats}, tmp_path / "inputs.pt")
    code = (
        "import sys, torch; sys.modules['babymerge'] = None\n"
        "from transformers import AutoModelForCausalLM\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(out)!r}, trust_remote_code=True)\n"
        f"x = torch.load({str(tmp_path / 'inputs.pt')!r})\n"
        f"torch.save(m(input_ids=x['ids'], image_features=x['feats']).logits, {str(tmp_path / 'logits.pt')!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert torch.allclose(torch.load(tmp_path / "logits.pt"), expected_logits, atol=1e-5)


def test_train_lora_and_fold_from_the_command_line(tmp_path, make_checkpoint, capsys):
    init = make_checkpoint(seed=4)
    assert main(["fold", str(init), "--out", str(tmp_path / "x")]) == 2
    assert "no adapter_config.json" in capsys.readouterr().err
    run = tmp_path / "run"
    args = ["train", "--mode", "text", "--init", str(init), "--text", str(synthetic_corpus(tmp_path / "text"))]
    args += ["--out", str(run), "--lora", "--max-length", "32", "--batch-size", "4", "--max-steps", "3", "--quiet"]
    assert main([*args, "--cache-dir", str(tmp_path / "cache"), "--logging-steps", "1"]) == 0
    adapter = run / "checkpoints" / "final"
    assert (adapter / "adapter_model.safetensors").is_file()
    assert main(["fold", str(adapter), "--out", str(tmp_path / "folded")]) == 0
    folded = load_file(tmp_path / "folded" / "model.safetensors")
    assert folded.keys() == load_file(init / "model.safetensors").keys()
    assert json.loads((tmp_path / "folded" / "babymerge_training.json").read_text())["lora"] is True
