"""In-memory merges are mergekit's own: the tensors equal mergekit-yaml's output for the same configuration;
the results store is safe for several processes and for a writer killed mid-line."""

from __future__ import annotations

import multiprocessing
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from helpers import MERGEKIT_YAML, mergekit_yaml_in_process, raw_keys
from safetensors.torch import load_file

from babymerge.sweep.merge import BASE, MULTIMODAL, TEXT, MergeSpec, load_state
from babymerge.sweep.store import ResultStore


@pytest.mark.parametrize(
    "spec",
    [
        MergeSpec(method="linear", alpha=0.3),
        MergeSpec(method="ties", alpha=0.8, parameters={"density": 0.5}),
        MergeSpec(method="slerp", alpha=0.5),
    ],
    ids=lambda s: s.method,
)
def test_in_memory_merge_equals_mergekit_yaml(models, tmp_path, spec, offline):
    config = spec.mergekit_config(models[TEXT], models[MULTIMODAL], models[BASE])
    (tmp_path / "merge.yml").write_text(yaml.safe_dump(config))
    out = tmp_path / "merged"
    cmd = [str(MERGEKIT_YAML), str(tmp_path / "merge.yml"), str(out), "--trust-remote-code"]
    subprocess.run(cmd, check=True, env=offline, capture_output=True, cwd=tmp_path)
    written: dict[str, torch.Tensor] = {}
    for shard in out.glob("*.safetensors"):
        written.update(load_file(shard))
    in_memory = spec.merge({role: load_state(path) for role, path in models.items()})
    assert set(written) == set(in_memory) == set(load_state(models[TEXT]))
    for name, tensor in written.items():
        assert torch.equal(in_memory[name], tensor), name


def test_linear_alpha_is_the_text_share(models):
    states = {role: load_state(path) for role, path in models.items()}
    merged = MergeSpec(method="linear", alpha=0.3).merge(states)
    name = "model.language_model.layers.0.mlp.up_proj.weight"
    expected = 0.3 * states[TEXT][name] + 0.7 * states[MULTIMODAL][name]
    torch.testing.assert_close(merged[name], expected)


SWEEP_METHODS = sorted(
    m.spec.name
    for m in __import__("mergekit.merge_methods", fromlist=["registry"]).registry.registered_methods()
    if {"weight", "t"} & {p.name for p in m.spec.parameters} and m.spec.name != "passthrough"
)
# density 1 keeps the randomised methods' masks full, so mergekit-yaml's draws cannot differ from ours
FULL = {"dare_ties": {"density": 1.0}, "dare_linear": {"density": 1.0}, "della": {"density": 1.0}}
FULL |= {"della_linear": {"density": 1.0}}


def statistics_beside(method: str, *folders) -> None:
    """The statistics file ``method`` reads beside each folder (``babymerge fisher`` / ``gram``), made once."""
    from babymerge.merging.fisher import fisher_file
    from babymerge.merging.gram import gram_file
    from babymerge.sweep.merge import STATISTICS

    for folder in folders:
        if not STATISTICS[method].beside(folder).exists():
            sample = folder.parent / "statistics_sample.txt"
            sample.write_text("The cat sees a red ball.\nA dog runs to the big tree.\nThe bird sleeps.\n")
            if method == "fisher":
                fisher_file(folder, text=sample, progress=False)
            else:
                gram_file(folder, text=sample)


def _distance(a: dict, b: dict) -> float:
    return sum(float((a[k].double() - b[k].double()).square().sum()) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("method", SWEEP_METHODS)
def test_alpha_is_the_text_share_for_every_method(models, tmp_path, method):
    """At a low alpha the merge lies nearer the multimodal model and at a high one nearer the text-only one
    (alpha is the text share, whatever the method; nearswap's ``t`` is a distance threshold, so the alphas are
    extreme), and the in-memory merge equals mergekit-yaml's for the same recipe at an asymmetric alpha."""
    states = {role: load_state(path) for role, path in models.items()}
    if method in ("fisher", "regmean"):  # its statistics, beside each parent
        statistics_beside(method, models[TEXT], models[MULTIMODAL])
    merged = {}
    for alpha in (0.002, 0.2, 0.998):
        spec = MergeSpec(method=method, alpha=alpha, parameters=FULL.get(method, {}))
        merged[alpha] = spec.merge(states, models)
    assert _distance(merged[0.002], states[MULTIMODAL]) < _distance(merged[0.002], states[TEXT])
    assert _distance(merged[0.998], states[TEXT]) < _distance(merged[0.998], states[MULTIMODAL])

    spec = MergeSpec(method=method, alpha=0.2, parameters=FULL.get(method, {}))
    recipe = tmp_path / "merge.yml"
    recipe.write_text(yaml.safe_dump(spec.mergekit_config(models[TEXT], models[MULTIMODAL], models[BASE])))
    mergekit_yaml_in_process(recipe, tmp_path / "out", "--trust-remote-code")
    written = load_state(tmp_path / "out")
    assert set(written) == set(merged[0.2])
    for name, tensor in written.items():
        torch.testing.assert_close(merged[0.2][name], tensor, rtol=1e-6, atol=1e-7, msg=name)


def _append_many(path: str, worker: int) -> None:
    store = ResultStore(path)
    for i in range(30):
        # keys 0..19 are shared by every worker; 20..29 are the worker's own
        key = i if i < 20 else 100 * (worker + 1) + i
        store.append([{"pair": "p", "method": "linear", "alpha": 0.5, "task": f"t{key}", "metric": "acc", "value": i}])


def test_store_is_safe_for_several_processes(tmp_path):
    path = tmp_path / "results.jsonl"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.starmap(_append_many, [(str(path), w) for w in range(4)])
    counts = raw_keys(path)
    assert len(counts) == 20 + 4 * 10
    assert set(counts.values()) == {1}


def test_store_skips_a_line_torn_by_a_kill(tmp_path):
    store = ResultStore(tmp_path / "results.jsonl")
    row = {"pair": "p", "method": "linear", "alpha": 0.5, "metric": "acc", "value": 1.0}
    store.append([{**row, "task": "a"}])
    with open(store.path, "a") as handle:
        handle.write('{"pair": "p", "method": "linear", "alpha": 0.5, "task": "b", "met')  # killed mid-line
    assert [r["task"] for r in store.records()] == ["a"]
    store.append([{**row, "task": "b"}, {**row, "task": "a"}])
    assert [r["task"] for r in store.records()] == ["a", "b"]


def test_materialize_writes_chosen_merges_with_cards(models, world, tmp_path, monkeypatch):
    """``--materialize``: full mergekit folders equal to the in-memory merge, cards with the sweep's scores,
    ``best`` resolved from the store, nothing left half-written when the merge fails."""

    from babymerge.sweep.run import SweepConfig
    from babymerge.sweep.stage import sweep_and_report

    config = SweepConfig(
        text=models[TEXT],
        multimodal=models[MULTIMODAL],
        base=models[BASE],
        methods=["linear"],
        alphas=[0.2, 0.7],
        tasks=["babylm_blimp_fast"],
        store=tmp_path / "out" / "results.jsonl",
        data_dir=world / "evaluation_data",
    )
    outcome = sweep_and_report(config, tmp_path / "out", ["linear:0.2", "best"], progress=False)
    scores = {r["alpha"]: r["value"] for r in outcome.records if r["metric"] == "acc" and r.get("alpha") is not None}
    best = max(scores, key=lambda a: (scores[a], -abs(a - 0.5)))
    folders = sorted((tmp_path / "out" / "merged").iterdir())
    assert [f.name.split("_")[1] for f in folders] == sorted({"alpha0.2", f"alpha{best:g}"})
    states = {role: load_state(path) for role, path in models.items()}
    for folder in folders:
        alpha = float(folder.name.split("_")[1].removeprefix("alpha"))
        expected = MergeSpec(method="linear", alpha=alpha).merge(states)
        written = load_state(folder)
        assert set(written) == set(expected) and all(torch.equal(written[k], expected[k]) for k in expected)
        card = (folder / "README.md").read_text()
        assert f"| babylm_blimp_fast | acc | {100 * scores[alpha]:.2f} |" in card
        assert (folder / "tokenizer.json").is_file()

    def broken(merge_config, out_path, *args, **kwargs):  # dies halfway through writing
        Path(out_path).mkdir(parents=True)
        (Path(out_path) / "model-00001-of-00002.safetensors").write_bytes(b"partial")
        raise RuntimeError("disk full")

    from babymerge.merging.guarded import guarded_run_merge
    from babymerge.merging.plugin import register

    register()  # the guard is in place; patch what it calls, so the patch is undone with the test
    monkeypatch.setattr(guarded_run_merge, "__wrapped__", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        sweep_and_report(config, tmp_path / "out", ["linear:0.45"], progress=False)
    assert sorted((tmp_path / "out" / "merged").iterdir()) == folders  # no partial folder left behind


def test_sweep_scores_merges_of_tied_checkpoints(make_checkpoint, tmp_path):
    """Checkpoints with tied embeddings hold no ``lm_head.weight``: the merge loads into the scored model (one
    loader for the sweep and ``diagnose``) and the head follows the merged embeddings."""
    from helpers import CountingScorer

    from babymerge.sweep.run import Sweep, SweepConfig

    text, multimodal = (make_checkpoint(seed, tie_word_embeddings=True) for seed in (7, 8))
    config = SweepConfig(
        text=text, multimodal=multimodal, methods=["linear"], alphas=[0.5], tasks=["weights_sum"], store=tmp_path / "r"
    )
    run = Sweep(config, CountingScorer, progress=False)
    (record,) = run.run()
    name = "model.language_model.embed_tokens.weight"
    expected = 0.5 * load_state(text)[name] + 0.5 * load_state(multimodal)[name]
    torch.testing.assert_close(run.model.get_output_embeddings().weight, expected)
    assert record["value"] == pytest.approx(sum(float(t.double().sum()) for t in run.model.state_dict().values()))
