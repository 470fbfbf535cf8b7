"""Fisher merging: the method's formula on generated statistics, the statistics against an independent
computation on a tiny model, the recipe through mergekit-yaml, and the one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import RECIPES, mergekit_yaml, mergekit_yaml_in_process, render, weights
from safetensors import safe_open
from safetensors.torch import save_file

SAMPLE = ["The cat sees a red ball.", "A dog runs to the big tree.", "The small bird sleeps.", "Blue house."]


def read(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}


def merge_in_memory(states: dict, fishers: dict, **parameters) -> dict[str, torch.Tensor]:
    from mergekit.merge_methods.api import merge_state_dicts

    from babymerge.merging import register

    register()
    return merge_state_dicts(states, "fisher", parameters={"fisher": fishers, **parameters}, dtype=torch.float32)


@pytest.fixture
def pair(tmp_path):
    """Two generated state dicts and a statistics-file writer."""
    g = torch.Generator().manual_seed(0)
    states = {m: {"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g)} for m in ("a", "b")}

    def stats(name: str, tensors: dict[str, torch.Tensor]) -> str:
        path = tmp_path / f"{name}.fisher.safetensors"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
        return str(path)

    return states, stats


def test_equal_statistics_give_the_plain_average(pair):
    states, stats = pair
    f = {"w": torch.rand(3, 4) + 0.1, "b": torch.rand(4) + 0.1}
    out = merge_in_memory(states, {"a": stats("a", f), "b": stats("b", f)})
    for name in ("w", "b"):
        torch.testing.assert_close(out[name], (states["a"][name] + states["b"][name]) / 2, rtol=0, atol=1e-6)


def test_zero_statistics_on_a_tensor_give_the_other_parent_there(pair):
    states, stats = pair
    fa = {"w": torch.zeros(3, 4), "b": torch.rand(4) + 0.1}
    fb = {"w": torch.rand(3, 4) + 0.1, "b": torch.rand(4) + 0.1}
    out = merge_in_memory(states, {"a": stats("a", fa), "b": stats("b", fb)})
    torch.testing.assert_close(out["w"], states["b"]["w"], rtol=0, atol=1e-6)
    expected_b = (fa["b"] * states["a"]["b"] + fb["b"] * states["b"]["b"]) / (fa["b"] + fb["b"])
    torch.testing.assert_close(out["b"], expected_b, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(out["b"], (states["a"]["b"] + states["b"]["b"]) / 2)


def test_epsilon_floors_the_statistics_and_weights_scale_them(pair):
    states, stats = pair
    zero = {"w": torch.zeros(3, 4), "b": torch.zeros(4)}
    paths = {"a": stats("a", zero), "b": stats("b", zero)}
    out = merge_in_memory(states, paths, weight={"a": 0.3, "b": 0.7})  # no information: the weighted average
    for name in ("w", "b"):
        expected = 0.3 * states["a"][name] + 0.7 * states["b"][name]
        torch.testing.assert_close(out[name], expected, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def models(make_checkpoint, tmp_path_factory):
    black = torch.randn(1, 32, generator=torch.Generator().manual_seed(5))
    text, mm = make_checkpoint(71, black_features=black), make_checkpoint(72, black_features=black)
    sample = tmp_path_factory.mktemp("sample") / "text.txt"
    sample.write_text("\n".join(SAMPLE) + "\n")
    from babymerge.cli import main

    for model in (text, mm):
        assert main(["fisher", str(model), "--text", str(sample)]) == 0
    return {"text": text, "mm": mm, "sample": sample, "black": black}


def independent_fisher(model_dir: Path, lines: list[str]) -> dict[str, torch.Tensor]:
    """Mean over rows of the squared gradient of each row's summed log-likelihood, from the model's own loss."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for line in lines:
        ids = tok([line], return_tensors="pt")["input_ids"]
        model.zero_grad()
        out = model(input_ids=ids, labels=ids)  # mean over the scored tokens (pads none, image token masked)
        scored = int((ids[0, 1:] != model.config.image_token_index).sum())
        (out.loss * scored).backward()
        for n, p in model.named_parameters():
            total[n] += p.grad**2
    return {n: t / len(lines) for n, t in total.items()}


def test_statistics_file_is_the_empirical_fisher(models):
    from babymerge.merging.fisher import beside

    path = beside(models["text"])
    assert path == models["text"].parent / "model.fisher.safetensors"
    got = read(path)
    expected = independent_fisher(models["text"], SAMPLE)
    assert set(got) == set(expected)
    assert "model.black_image_features" not in got  # a buffer: no gradient
    for name, f in expected.items():
        torch.testing.assert_close(got[name], f, rtol=1e-4, atol=1e-12, msg=name)
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["model"] == str(models["text"].resolve()) and int(meta["rows"]) == len(SAMPLE)
    assert json.loads(meta["data"]) == [str(models["sample"].resolve())] and int(meta["tokens"]) > len(SAMPLE)


def test_fisher_recipe_through_plain_mergekit_yaml(models, tmp_path):
    from babymerge.merging.fisher import beside

    paths = {"text_model": models["text"], "multimodal_model": models["mm"]}
    result = mergekit_yaml(render("fisher.yml", tmp_path, paths), tmp_path / "out")  # the plain command
    assert result.returncode == 0, result.stderr[-2000:]
    assert "merge_method: fisher" in (RECIPES / "fisher.yml").read_text()
    wt, wm, out = weights(models["text"]), weights(models["mm"]), weights(tmp_path / "out")
    ft, fm = read(beside(models["text"])), read(beside(models["mm"]))
    assert set(out) == set(wt)
    for name, tensor in out.items():
        if name in ft:  # the weighted average by each parameter's Fisher, computed here in float64
            a, b = ft[name].double().clamp_min(1e-8), fm[name].double().clamp_min(1e-8)
            expected = (a * wt[name].double() + b * wm[name].double()) / (a + b)
        else:
            expected = (wt[name].double() + wm[name].double()) / 2
        torch.testing.assert_close(tensor, expected.float(), rtol=1e-5, atol=1e-6, msg=name)
    plain = (wt["lm_head.weight"] + wm["lm_head.weight"]) / 2
    assert (out["lm_head.weight"] - plain).abs().max() > 1e-3


def test_parent_without_statistics_is_refused_in_one_line(models, make_checkpoint, tmp_path):
    from babymerge.errors import BabymergeError
    from babymerge.merging.fisher import beside

    bare = make_checkpoint(73, black_features=models["black"])
    recipe = render("fisher.yml", tmp_path, {"text_model": models["text"], "multimodal_model": bare})
    with pytest.raises(BabymergeError) as info:
        mergekit_yaml_in_process(recipe, tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{beside(bare)}: no Fisher statistics file")
    assert not (tmp_path / "out").exists()


def test_merge_command_refuses_it_with_status_2(models, make_checkpoint, tmp_path, cli):
    bare = make_checkpoint(74, black_features=models["black"])
    recipe = render("fisher.yml", tmp_path, {"text_model": models["text"], "multimodal_model": bare})
    result = cli("merge", recipe, tmp_path / "out")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no Fisher statistics file" in lines[0], result.stderr[-2000:]


def test_statistics_of_another_shape_are_refused(models, tmp_path, pair):
    states, stats = pair
    from babymerge.errors import BabymergeError

    bad = stats("bad", {"w": torch.ones(4, 3), "b": torch.ones(4)})
    good = stats("good", {"w": torch.ones(3, 4), "b": torch.ones(4)})
    with pytest.raises(BabymergeError, match=r"bad\.fisher\.safetensors: Fisher statistics for w have shape"):
        merge_in_memory(states, {"a": good, "b": bad})


def test_fisher_refuses_to_overwrite_its_statistics(models, cli):
    result = cli("fisher", models["text"], "--text", models["sample"])
    assert result.returncode == 2 and "statistics file exists" in result.stderr


def test_multimodal_statistics_use_the_mixture(models, make_checkpoint, tmp_path):
    from babymerge.features.store import FeatureFile
    from babymerge.merging.fisher import fisher_file

    mm = make_checkpoint(75)
    feats = torch.randn(3, 1, 32, generator=torch.Generator().manual_seed(9))
    black = weights(mm)["model.black_image_features"]
    FeatureFile(["a.jpg", "b.jpg", "c.jpg"], feats, black).save(tmp_path / "features.safetensors")
    captions = tmp_path / "captions.txt"
    captions.write_text("a.jpg#0\tA cat sees a ball.\nb.jpg#0\tA dog runs.\nc.jpg#1\tThe bird.\n")
    text_only = read(fisher_file(mm, text=models["sample"], out=tmp_path / "text.safetensors", progress=False))
    out = fisher_file(
        mm, text=models["sample"], captions=captions, features=tmp_path / "features.safetensors", progress=False
    )
    with safe_open(str(out), framework="pt") as handle:
        assert int(handle.metadata()["rows"]) == len(SAMPLE) + 3
        mixture = handle.get_tensor("model.multi_modal_projector.linear_1.weight")
    assert not torch.allclose(mixture, text_only["model.multi_modal_projector.linear_1.weight"])


def test_fisher_in_the_sweep_reads_each_checkpoints_statistics(models, tmp_path):
    from helpers import CountingScorer, run_merge

    from babymerge.merging.fisher import beside
    from babymerge.sweep.merge import MULTIMODAL, TEXT, MergeSpec
    from babymerge.sweep.run import Sweep, SweepConfig

    folders = {TEXT: models["text"], MULTIMODAL: models["mm"]}
    wt, wm = weights(models["text"]), weights(models["mm"])
    ft, fm = read(beside(models["text"])), read(beside(models["mm"]))
    spec = MergeSpec(method="fisher", alpha=0.3)  # weight 0.3 on the text-only model, 0.7 on the multimodal one
    merged = spec.merge({TEXT: wt, MULTIMODAL: wm}, folders)
    for name, tensor in merged.items():
        f = (ft[name].double().clamp_min(1e-8), fm[name].double().clamp_min(1e-8)) if name in ft else (1.0, 1.0)
        a, b = 0.3 * f[0], 0.7 * f[1]
        expected = (a * wt[name].double() + b * wm[name].double()) / (a + b)
        torch.testing.assert_close(tensor, expected.float(), rtol=1e-5, atol=1e-6, msg=name)
    run_merge(spec.mergekit_config(models["text"], models["mm"]), tmp_path / "yaml")  # what --materialize writes
    for name, tensor in weights(tmp_path / "yaml").items():
        torch.testing.assert_close(tensor, merged[name], rtol=1e-6, atol=1e-7, msg=name)

    config = {"methods": ["fisher"], "alphas": [0.3], "tasks": ["weights_sum"], "store": tmp_path / "r.jsonl"}
    run = Sweep(SweepConfig(text=models["text"], multimodal=models["mm"], **config), CountingScorer, progress=False)
    (record,) = run.run()
    assert record["value"] == pytest.approx(sum(float(t.double().sum()) for t in merged.values()), rel=1e-5)


def test_sweep_recomputes_when_statistics_change_and_refuses_without_them(models, make_checkpoint, tmp_path):
    import shutil

    from helpers import CountingScorer

    from babymerge.errors import BabymergeError
    from babymerge.merging.fisher import beside, fisher_file
    from babymerge.sweep.run import Sweep, SweepConfig

    text = tmp_path / "text"
    shutil.copytree(models["text"], text)
    shutil.copy(beside(models["text"]), beside(text))
    config = {"methods": ["fisher"], "alphas": [0.5], "tasks": ["weights_sum"], "store": tmp_path / "r.jsonl"}

    def sweep(multimodal) -> Sweep:
        return Sweep(SweepConfig(text=text, multimodal=multimodal, **config), CountingScorer, progress=False)

    (first,) = sweep(models["mm"]).run()
    beside(text).unlink()
    short = tmp_path / "short.txt"
    short.write_text(SAMPLE[0] + "\n")
    fisher_file(text, text=short, progress=False)  # other data: other statistics
    again = sweep(models["mm"])
    (second,) = again.run()
    assert again.recomputed == 1 and second["value"] != pytest.approx(first["value"], rel=1e-9)

    bare = make_checkpoint(76, black_features=models["black"])
    with pytest.raises(BabymergeError, match=rf"^{beside(bare)}: no Fisher statistics file"):
        sweep(bare)  # refused when the sweep is set up, before any merge
