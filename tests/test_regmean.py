"""RegMean: the closed form against least squares, Gram matrices against the model's activations, and the
method used from a mergekit recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import RECIPES, render, weights
from safetensors import safe_open

SAMPLE = ["The cat sees a red ball.", "A dog runs to the big tree.", "The small bird sleeps.", "Blue house."]


def test_regmean_with_full_grams_is_least_squares():
    from babymerge.merging.regmean import regmean_linear

    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(50, 6, generator=g, dtype=torch.float64) for _ in range(2)]
    ws = [torch.randn(4, 6, generator=g, dtype=torch.float64) for _ in range(2)]
    merged = regmean_linear(ws, [x.T @ x for x in xs], gamma=1.0)
    # W minimising sum_i ||X_i W^T - X_i W_i^T||^2, by least squares on the stacked problem.
    stacked_x = torch.cat(xs)
    stacked_y = torch.cat([x @ w.T for x, w in zip(xs, ws, strict=True)])
    expected = torch.linalg.lstsq(stacked_x, stacked_y).solution.T
    torch.testing.assert_close(merged, expected, rtol=1e-9, atol=1e-9)


def test_gamma_zero_is_diagonal_weighting():
    from babymerge.merging.regmean import regmean_linear

    g = torch.Generator().manual_seed(1)
    grams = [(lambda a: a.T @ a)(torch.randn(9, 5, generator=g, dtype=torch.float64)) for _ in range(2)]
    ws = [torch.randn(3, 5, generator=g, dtype=torch.float64) for _ in range(2)]
    merged = regmean_linear(ws, grams, gamma=0.0)
    d = [torch.diagonal(x) for x in grams]
    expected = (ws[0] * d[0] + ws[1] * d[1]) / (d[0] + d[1])  # column j weighted by each model's input energy
    torch.testing.assert_close(merged, expected, rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def models(make_checkpoint, tmp_path_factory):
    black = torch.randn(1, 32, generator=torch.Generator().manual_seed(5))
    text, mm = make_checkpoint(41, black_features=black), make_checkpoint(42, black_features=black)
    sample = tmp_path_factory.mktemp("sample") / "text.txt"
    sample.write_text("\n".join(SAMPLE) + "\n")
    grams = tmp_path_factory.mktemp("grams")
    from babymerge.cli import main

    assert main(["gram", str(text), str(grams / "text.safetensors"), "--text", str(sample), "--batch-size", "3"]) == 0
    assert main(["gram", str(mm), str(grams / "mm.safetensors"), "--text", str(sample), "--batch-size", "3"]) == 0
    return {"text": text, "mm": mm, "sample": sample, "black": black, "grams": grams}


def read_grams(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}


def test_gram_matrices_match_activations(models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    grams = read_grams(models["grams"] / "text.safetensors")
    linear_names = {k.removesuffix(".weight") for k, v in weights(models["text"]).items() if v.dim() == 2}
    linear_names -= {"model.language_model.embed_tokens", "model.black_image_features"}
    assert set(grams) == linear_names
    # Projector input on text-only data is always the black image's features: G = b^T b.
    b = models["black"].double()
    torch.testing.assert_close(grams["model.multi_modal_projector.linear_1"], b.T @ b, rtol=1e-6, atol=1e-8)
    # lm_head input: the language model's final (normed) hidden states over non-padding tokens.
    model = AutoModelForCausalLM.from_pretrained(models["text"]).eval()
    tok = AutoTokenizer.from_pretrained(models["text"])
    rows = []
    with torch.no_grad():
        for line in SAMPLE:
            ids = tok([line], return_tensors="pt")
            rows.append(model.model(**ids).last_hidden_state[0].double())
    h = torch.cat(rows)
    torch.testing.assert_close(
        grams["lm_head"], h.T @ h / h.shape[0], rtol=1e-4, atol=1e-6
    )  # float32 forward, padded vs not


def test_regmean_recipe_through_mergekit(models, tmp_path):
    from mergekit.scripts.run_yaml import main

    paths = {
        "text_model": models["text"],
        "multimodal_model": models["mm"],
        "grams/text.safetensors": models["grams"] / "text.safetensors",
        "grams/multimodal.safetensors": models["grams"] / "mm.safetensors",
    }
    main([str(render("regmean.yml", tmp_path, paths)), str(tmp_path / "out"), "--quiet"], standalone_mode=False)
    wt, wm, out = weights(models["text"]), weights(models["mm"]), weights(tmp_path / "out")
    gt, gm = read_grams(paths["grams/text.safetensors"]), read_grams(paths["grams/multimodal.safetensors"])
    gamma = 0.25
    assert "gamma: 0.25" in (RECIPES / "regmean.yml").read_text()
    assert set(out) == set(wt)
    for name, tensor in out.items():
        key = name.removesuffix(".weight")
        if key in gt:
            a, b = (gamma * g + (1 - gamma) * torch.diag(torch.diagonal(g)) for g in (gt[key], gm[key]))
            expected = torch.linalg.solve(a + b, a @ wt[name].double().T + b @ wm[name].double().T).T
        else:
            expected = (wt[name].double() + wm[name].double()) / 2
        torch.testing.assert_close(tensor, expected.float(), rtol=1e-4, atol=1e-5, msg=name)
    assert not torch.allclose(out["lm_head.weight"], (wt["lm_head.weight"] + wm["lm_head.weight"]) / 2)


def test_regmean_without_gram_parameter_fails_clearly(models, tmp_path):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    from babymerge.errors import BabymergeError

    config = {"merge_method": "regmean", "models": [{"model": str(models["text"])}, {"model": str(models["mm"])}]}
    with pytest.raises(BabymergeError, match=r"models\[0\]\.parameters\.gram"):
        run_merge(MergeConfiguration.model_validate(config), str(tmp_path / "o"), options=MergeOptions(quiet=True))


def test_gram_refuses_existing_output(models):
    from babymerge.cli import main

    out = models["grams"] / "text.safetensors"
    assert main(["gram", str(models["text"]), str(out), "--text", str(models["sample"])]) == 2


def test_gram_on_image_captions_uses_each_image(models, tmp_path):
    from babymerge.features.store import FeatureFile
    from babymerge.merging.gram import gram_file

    feats = torch.randn(3, 1, 32, generator=torch.Generator().manual_seed(9))
    FeatureFile(["a.jpg", "b.jpg", "c.jpg"], feats, models["black"]).save(tmp_path / "features.safetensors")
    captions = tmp_path / "captions.txt"
    captions.write_text("a.jpg#0\tA cat sees a ball.\nb.jpg#0\tA dog runs.\nc.jpg#1\tThe bird.\nb.jpg#1\tA red tree.\n")
    out = gram_file(
        models["mm"], tmp_path / "g.safetensors", captions=captions, features=tmp_path / "features.safetensors"
    )
    rows = feats[[0, 1, 2, 1], 0].double()  # one image token per caption, in caption order
    torch.testing.assert_close(
        read_grams(out)["model.multi_modal_projector.linear_1"], rows.T @ rows / 4, rtol=1e-6, atol=1e-8
    )
