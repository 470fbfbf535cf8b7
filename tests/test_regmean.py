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


def test_regmean_without_its_gram_file_fails_clearly(models, tmp_path):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    from babymerge.errors import BabymergeError
    from babymerge.merging.statistics import GRAM

    config = {"merge_method": "regmean", "models": [{"model": str(models["text"])}, {"model": str(models["mm"])}]}
    beside_either = "|".join(str(GRAM.beside(models[m])) for m in ("text", "mm"))
    expected = rf"^({beside_either}): no Gram statistics file for /\S+ \(compute it with `babymerge gram MODEL`\)$"
    with pytest.raises(BabymergeError, match=expected):  # no gram parameter: the file beside the folder
        run_merge(MergeConfiguration.model_validate(config), str(tmp_path / "o"), options=MergeOptions(quiet=True))
    assert not (tmp_path / "o").exists()


def test_weights_scale_each_models_grams():
    from babymerge.merging.regmean import regmean_linear

    g = torch.Generator().manual_seed(2)
    grams = [(lambda a: a.T @ a)(torch.randn(9, 5, generator=g, dtype=torch.float64)) for _ in range(2)]
    ws = [torch.randn(3, 5, generator=g, dtype=torch.float64) for _ in range(2)]
    plain = regmean_linear(ws, grams, gamma=0.25)
    torch.testing.assert_close(regmean_linear(ws, grams, 0.25, [0.5, 0.5]), plain, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(regmean_linear(ws, grams, 0.25, [0.0, 1.0]), ws[1], rtol=1e-9, atol=1e-9)
    scaled = regmean_linear(ws, [0.3 * grams[0], 0.7 * grams[1]], gamma=0.25)
    torch.testing.assert_close(regmean_linear(ws, grams, 0.25, [0.3, 0.7]), scaled, rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def beside(models, make_checkpoint):
    """A pair whose Gram files lie beside the folders, written by ``babymerge gram MODEL`` (no ``--out``)."""
    from babymerge.cli import main
    from babymerge.merging.statistics import GRAM

    text, mm = make_checkpoint(43, black_features=models["black"]), make_checkpoint(44, black_features=models["black"])
    for folder in (text, mm):
        assert main(["gram", str(folder), "--text", str(models["sample"]), "--batch-size", "3"]) == 0
        assert GRAM.beside(folder).is_file()
    return {"text": text, "mm": mm}


def test_sweep_regmean_equals_mergekit_yaml_and_reads_each_gram_file_once(beside, tmp_path, monkeypatch):
    """At alpha 0.5 the sweep's in-memory RegMean is the plain recipe (no weights) through mergekit-yaml; at every
    alpha it is the sweep's own mergekit configuration through mergekit-yaml; a sweep over three alphas opens each
    checkpoint's Gram file once and computes none."""
    import safetensors
    import yaml
    from helpers import CountingScorer, mergekit_yaml_in_process

    from babymerge.merging import gram, statistics
    from babymerge.merging.statistics import GRAM
    from babymerge.sweep.merge import MULTIMODAL, TEXT, MergeSpec, load_state
    from babymerge.sweep.run import Sweep, SweepConfig

    folders = {TEXT: beside["text"], MULTIMODAL: beside["mm"]}
    states = {role: load_state(folder) for role, folder in folders.items()}
    paths = {"text_model": beside["text"], "multimodal_model": beside["mm"]}
    paths |= {"grams/text.safetensors": GRAM.beside(beside["text"])}
    paths |= {"grams/multimodal.safetensors": GRAM.beside(beside["mm"])}
    mergekit_yaml_in_process(render("regmean.yml", tmp_path, paths), tmp_path / "plain")
    merged = {}
    for alpha in (0.5, 0.2):
        spec = MergeSpec(method="regmean", alpha=alpha)
        merged[alpha] = spec.merge(states, folders)
        config = tmp_path / f"sweep{alpha}.yml"
        config.write_text(yaml.safe_dump(spec.mergekit_config(beside["text"], beside["mm"])))
        mergekit_yaml_in_process(config, tmp_path / f"yaml{alpha}")
        for name, tensor in weights(tmp_path / f"yaml{alpha}").items():
            torch.testing.assert_close(merged[alpha][name], tensor, rtol=1e-6, atol=1e-7, msg=name)
    written = weights(tmp_path / "plain")
    assert set(written) == set(merged[0.5])
    for name, tensor in written.items():
        torch.testing.assert_close(merged[0.5][name], tensor, rtol=1e-6, atol=1e-7, msg=name)
    name = "model.language_model.layers.0.mlp.up_proj.weight"
    assert not torch.allclose(merged[0.2][name], merged[0.5][name])  # alpha weights the Gram matrices

    opened = []
    real_open = safetensors.safe_open
    monkeypatch.setattr(safetensors, "safe_open", lambda path, **kw: opened.append(path) or real_open(path, **kw))
    monkeypatch.setattr(gram, "compute_grams", lambda *a, **k: pytest.fail("the sweep computed Gram matrices"))
    statistics._open.cache_clear()
    config = {"methods": ["regmean"], "alphas": [0.2, 0.5, 0.8], "tasks": ["weights_sum"]}
    run = Sweep(
        SweepConfig(text=beside["text"], multimodal=beside["mm"], store=tmp_path / "r.jsonl", **config),
        CountingScorer,
        progress=False,
    )
    records = run.run()
    assert len(run.scorer.calls) == len(records) == 3
    assert sorted(p for p in opened if p.endswith(".gram.safetensors")) == sorted(
        str(GRAM.beside(f)) for f in folders.values()
    )
    (half,) = [r for r in records if r["alpha"] == 0.5]
    assert half["value"] == pytest.approx(sum(float(t.double().sum()) for t in merged[0.5].values()), rel=1e-6)


def test_sweep_recomputes_when_a_gram_file_changes_and_refuses_without_one(beside, make_checkpoint, tmp_path):
    import shutil

    from helpers import CountingScorer

    from babymerge.errors import BabymergeError
    from babymerge.merging.gram import gram_file
    from babymerge.merging.statistics import GRAM
    from babymerge.sweep.run import Sweep, SweepConfig

    text = tmp_path / "text"
    shutil.copytree(beside["text"], text)
    shutil.copy(GRAM.beside(beside["text"]), GRAM.beside(text))
    config = {"methods": ["regmean"], "alphas": [0.5], "tasks": ["weights_sum"], "store": tmp_path / "r.jsonl"}

    def sweep(multimodal) -> Sweep:
        return Sweep(SweepConfig(text=text, multimodal=multimodal, **config), CountingScorer, progress=False)

    (first,) = sweep(beside["mm"]).run()
    GRAM.beside(text).unlink()
    short = tmp_path / "short.txt"
    short.write_text(SAMPLE[0] + "\n")
    gram_file(text, text=short)  # other data: other Gram matrices
    again = sweep(beside["mm"])
    (second,) = again.run()
    assert again.recomputed == 1 and second["value"] != pytest.approx(first["value"], rel=1e-9)

    bare = make_checkpoint(45)
    with pytest.raises(BabymergeError, match=rf"^{GRAM.beside(bare)}: no Gram statistics file \(compute it with"):
        sweep(bare)  # refused when the sweep is set up, before any merge


def test_missing_statistics_files_are_written_beside_once(beside, models, make_checkpoint):
    """What a sweep needs before it starts (the demo's step): each method's file beside every checkpoint lacking
    it, computed as `babymerge gram` / `babymerge fisher` would, and never again once there."""
    from babymerge.merging.statistics import FISHER, GRAM

    folder = make_checkpoint(46, black_features=models["black"])
    sample = {"text": models["sample"], "max_samples": 3}
    assert GRAM.write_missing([beside["text"], folder, folder], **sample) == [GRAM.beside(folder)]
    assert FISHER.write_missing([folder], progress=False, **sample) == [FISHER.beside(folder)]
    stamp = GRAM.beside(folder).stat().st_mtime_ns
    assert GRAM.write_missing([folder], **sample) == [] and GRAM.beside(folder).stat().st_mtime_ns == stamp
    assert read_grams(GRAM.beside(folder)).keys() == read_grams(GRAM.beside(beside["text"])).keys()
