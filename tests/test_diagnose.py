"""``babymerge diagnose``: the loss barrier along alpha (0 for a model with itself, clearly positive for two
models from unrelated initialisations), task-vector cosines, sign conflicts, and the command's products."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import synthetic_corpus

from babymerge.cli import main
from babymerge.diagnose.config import DiagnoseConfig
from babymerge.diagnose.data import sample, scored_tokens
from babymerge.diagnose.loss import barrier
from babymerge.diagnose.weights import cosine, sign_conflict, tensor_group, tensor_layer, weight_rows

PRODUCTS = {
    "diagnose.json",
    "diagnose.md",
    "weights.csv",
    "loss_path.csv",
    "loss_path.png",
    "weights.png",
    "groups.png",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The synthetic text the tiny tokenizer was trained on (generated again: same seed, same lines)."""
    return synthetic_corpus(tmp_path_factory.mktemp("diagnose_corpus"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, make_checkpoint, corpus) -> dict[str, Path]:
    """Two tiny models trained briefly (HF Trainer) on the corpus from unrelated random initialisations."""
    from babymerge.training import TrainConfig, train

    root = tmp_path_factory.mktemp("diagnose_runs")
    out, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: a second thread only waits on a loaded machine (docs/demo.md)
    for seed in (3, 4):
        init = make_checkpoint(seed)
        config = TrainConfig(
            mode="text",
            init=init,
            text=corpus,
            out=root / f"run{seed}",
            seed=seed,
            max_steps=30,
            batch_size=16,
            max_length=32,
            learning_rate=5e-3,
            warmup_steps=0,
            cache_dir=root / "cache",
            progress=False,
        )
        out[f"init{seed}"], out[f"run{seed}"] = init, train(config) / "checkpoints" / "final"
    torch.set_num_threads(threads)
    return out


def diagnosed(tmp_path: Path, text_model: Path, multimodal_model: Path, base: Path, **fields) -> dict:
    from babymerge.diagnose.run import diagnose

    fields = {"max_tokens": 1000, "max_length": 32, "progress": False, "threads": 1} | fields
    config = DiagnoseConfig(
        text_model=text_model, multimodal_model=multimodal_model, base=base, out=tmp_path / "d", **fields
    )
    out, files = diagnose(config)
    assert {f.name for f in files} <= PRODUCTS and all(f.is_file() for f in files)
    return json.loads((out / "diagnose.json").read_text())


# -- the pieces, on hand-made numbers --------------------------------------------------------------------------


def test_barrier_is_the_largest_excess_over_the_straight_line():
    assert barrier([0.0, 0.5, 1.0], [1.0, 3.0, 2.0]) == (1.5, 0.5)  # the line is at 1.5 at alpha 0.5
    assert barrier([0.0, 0.25, 0.5, 1.0], [2.0, 2.5, 2.0, 4.0]) == (pytest.approx(0.0), 0.0)  # below: none
    assert barrier([0.0, 0.5, 1.0], [1.0, 1.0, 1.0]) == (0.0, 0.0)


def test_cosine_of_a_task_vector_with_itself_is_one_and_with_its_negation_minus_one():
    tau = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    assert cosine(tau, tau) == pytest.approx(1.0)
    assert cosine(tau, -tau) == pytest.approx(-1.0)
    assert cosine(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])) == pytest.approx(0.0)
    assert cosine(tau, torch.zeros_like(tau)) is None  # undefined, not 0


def test_sign_conflict_fraction_on_hand_made_tensors():
    a = torch.tensor([1.0, -1.0, 2.0, 0.0, -3.0])
    b = torch.tensor([1.0, 1.0, -3.0, 5.0, -1.0])
    assert sign_conflict(a, b) == pytest.approx(2 / 5)  # entries 1 and 2; a zero (entry 3) is no conflict
    assert sign_conflict(a, -a) == pytest.approx(4 / 5)
    assert sign_conflict(a, a) == 0.0


def test_tensor_names_map_to_layers_and_groups():
    layer = "model.language_model.layers.3."
    assert [tensor_group(layer + n) for n in ("self_attn.q_proj.weight", "mlp.up_proj.weight")] == ["attention", "mlp"]
    assert tensor_group(layer + "post_attention_layernorm.weight") == "norm"
    assert tensor_group("model.language_model.embed_tokens.weight") == tensor_group("lm_head.weight") == "embeddings"
    assert tensor_group("model.multi_modal_projector.linear_1.bias") == "projector"
    assert tensor_group("model.black_image_features") == "other"
    assert (tensor_layer(layer + "mlp.up_proj.weight"), tensor_layer("lm_head.weight")) == ("3", "-")


def test_weight_rows_per_layer_and_group_and_whole_model():
    generator = torch.Generator().manual_seed(1)
    base = {
        "model.language_model.layers.0.self_attn.q_proj.weight": torch.randn(4, 4, generator=generator),
        "model.language_model.layers.1.mlp.up_proj.weight": torch.randn(8, 4, generator=generator),
        "model.multi_modal_projector.linear_1.weight": torch.randn(4, 3, generator=generator),
    }
    tau = {name: torch.randn(t.shape, generator=generator) for name, t in base.items()}
    text = {name: t + tau[name] for name, t in base.items()}
    opposite = {name: t - tau[name] for name, t in base.items()}
    rows = {(r["layer"], r["group"]): r for r in weight_rows(text, opposite, base)}
    assert set(rows) == {
        ("0", "attention"),
        ("1", "mlp"),
        ("-", "projector"),
        ("all", "attention"),
        ("all", "mlp"),
        ("all", "projector"),
        ("all", "all"),
    }
    whole = rows[("all", "all")]
    assert whole["entries"] == 16 + 32 + 12
    assert all(r["cosine"] == pytest.approx(-1.0) and r["sign_conflict"] == 1.0 for r in rows.values())
    norm = torch.cat([t.flatten() for t in tau.values()]).norm().item()
    assert whole["text_norm"] == pytest.approx(norm) and whole["multimodal_norm"] == pytest.approx(norm)
    assert whole["distance"] == pytest.approx(2 * norm)
    same = {(r["layer"], r["group"]): r for r in weight_rows(text, text, base)}
    assert all(r["cosine"] == pytest.approx(1.0) and r["sign_conflict"] == 0.0 for r in same.values())


def test_the_sample_is_fixed_and_just_reaches_the_token_budget():
    rows = [torch.tensor([2, 4] + [7] * n) for n in (5, 9, 3, 12, 6, 8)]  # <s> <image> then n text tokens
    assert [scored_tokens(r, image_token_id=4) for r in rows] == [5, 9, 3, 12, 6, 8]
    chosen = sample(rows, 4, max_tokens=20, seed=0)
    assert chosen == sample(rows, 4, max_tokens=20, seed=0) and chosen == sorted(chosen)
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0)).tolist()
    counts = [scored_tokens(rows[i], 4) for i in order]
    needed = next(k for k in range(1, len(rows) + 1) if sum(counts[:k]) >= 20)
    assert chosen == sorted(order[:needed])


def test_alphas_always_hold_both_endpoints_and_stay_in_range(tmp_path):
    paths = {"text_model": "t", "multimodal_model": "m", "base": "b", "out": tmp_path}
    assert DiagnoseConfig(**paths, alphas=[0.5, 0.25]).alphas == [0.0, 0.25, 0.5, 1.0]
    with pytest.raises(ValueError, match="within"):
        DiagnoseConfig(**paths, alphas=[1.5])
    with pytest.raises(ValueError, match="--captions and --features go together"):
        DiagnoseConfig(**paths, captions="c.txt")


# -- whole diagnoses on tiny trained models ---------------------------------------------------------------------


def test_a_model_merged_with_itself_has_no_barrier_through_the_cli(trained, corpus, tmp_path, capsys):
    out, run, threads = tmp_path / "self", trained["run3"], torch.get_num_threads()
    args = [run, run, "--base", trained["init3"], "--out", out, "--text", corpus, "--max-tokens", "1000"]
    args += ["--max-length", "32", "--alphas", "0.25,0.5,0.75", "--no-progress", "--threads", "1"]
    assert main(["diagnose", *map(str, args)]) == 0
    assert torch.get_num_threads() == threads  # --threads holds for the command only
    assert {p.name for p in out.iterdir()} == PRODUCTS
    report = json.loads((out / "diagnose.json").read_text())
    path = report["loss"]["text"]
    assert report["alphas"] == path["alphas"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert path["tokens"] >= 1000
    assert path["barrier"] == pytest.approx(0.0, abs=1e-5)
    assert max(path["loss"]) - min(path["loss"]) == pytest.approx(0.0, abs=1e-5)
    assert all(r["cosine"] == pytest.approx(1.0) for r in report["weights"] if r["cosine"] is not None)
    assert all(r["sign_conflict"] == 0.0 and r["distance"] == 0.0 for r in report["weights"])
    assert "| **barrier** |" in (out / "diagnose.md").read_text() and "| **barrier** |" in capsys.readouterr().out
    assert (out / "loss_path.csv").read_text().splitlines()[0] == "alpha,text"


def test_unrelated_initialisations_are_separated_by_a_clear_barrier(trained, corpus, tmp_path):
    report = diagnosed(tmp_path, trained["run3"], trained["run4"], trained["init3"], text=corpus)
    path = report["loss"]["text"]
    assert path["barrier"] > 0.3, path  # 0.76 when written; the endpoints' losses are about 2.1-2.3
    assert 0.0 < path["barrier_alpha"] < 1.0
    assert max(path["loss"]) > max(path["loss"][0], path["loss"][-1]) + 0.3


def test_tied_embeddings_load_into_the_model(make_checkpoint, corpus, tmp_path):
    tied = make_checkpoint(6, tie_word_embeddings=True)  # its file holds no lm_head.weight
    path = diagnosed(tmp_path, tied, tied, tied, text=corpus, max_tokens=200)["loss"]["text"]
    assert path["barrier"] == pytest.approx(0.0, abs=1e-5) and path["tokens"] >= 200


def test_a_state_that_does_not_fit_the_model_is_one_line(make_checkpoint):
    from transformers import AutoModelForCausalLM

    from babymerge.errors import BabymergeError
    from babymerge.sweep.slot import load_weights

    model = AutoModelForCausalLM.from_pretrained(make_checkpoint(0))
    state = model.state_dict()
    del state["model.language_model.norm.weight"]
    with pytest.raises(BabymergeError, match=r"tensor model\.language_model\.norm\.weight is missing for"):
        load_weights(model, state)
    with pytest.raises(BabymergeError, match="tensor extra is not a tensor of"):
        load_weights(model, {**model.state_dict(), "extra": torch.zeros(1)})


def test_captions_are_scored_with_their_own_images(make_checkpoint, tmp_path):
    from babymerge.features.store import FeatureFile
    from babymerge.formats.captions import write_captions

    model = make_checkpoint(5)
    captions = write_captions(tmp_path / "captions.txt", [(f"img{i}.png", "A red ball is big.") for i in range(40)])
    rows = []
    for seed in (0, 1):  # two feature files for the same images: only the image features differ
        features = torch.randn(40, 1, 32, generator=torch.Generator().manual_seed(seed)) * 5
        path = tmp_path / f"features{seed}.safetensors"
        FeatureFile([f"img{i}.png" for i in range(40)], features, torch.zeros(1, 32)).save(path)
        report = diagnosed(tmp_path / str(seed), model, model, model, captions=captions, features=path, max_tokens=50)
        rows.append(report["loss"]["captions"])
    assert rows[0]["tokens"] == rows[1]["tokens"] >= 50
    assert rows[0]["loss"][0] != pytest.approx(rows[1]["loss"][0], abs=1e-4)


def test_bad_input_is_one_line(trained, tmp_path, capsys):
    run, init = str(trained["run3"]), str(trained["init3"])

    def error(*args: object) -> str:
        assert main(["diagnose", run, run, *map(str, args)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("babymerge diagnose: error: ") and err.count("\n") == 1, err
        return err

    assert "--captions and --features go together" in error("--base", init, "--out", tmp_path / "o", "--captions", "c")
    (tmp_path / "exists").mkdir()
    assert "output folder exists" in error("--base", init, "--out", tmp_path / "exists")
    assert "nowhere" in error("--base", tmp_path / "nowhere", "--out", tmp_path / "o")
    assert "within [0, 1]" in error("--base", init, "--out", tmp_path / "o", "--alphas", "0.5,2")
    assert not (tmp_path / "o").exists()


# -- the sweep's diagnostics -----------------------------------------------------------------------------------


def test_the_sweep_writes_each_pairs_diagnostics_and_a_summary(trained, corpus, tmp_path, monkeypatch):
    """A sweep with diagnose on writes diagnose's folder per pair and a summary row per pair whose barrier and
    cosine are those ``babymerge diagnose`` reports for that pair run by itself; a rerun keeps the folders."""
    import csv
    import shutil

    from helpers import CountingScorer

    from babymerge.diagnose import run as diagnose_run
    from babymerge.sweep import stage
    from babymerge.sweep.run import Sweep, SweepConfig

    parts = {
        "text": {"1k": trained["run3"], "2k": trained["run3"]},
        "mm": {"1k": trained["run4"], "2k": trained["init4"]},
    }
    for side, checkpoints in parts.items():
        for name, source in checkpoints.items():
            shutil.copytree(source, tmp_path / side / "checkpoints" / name)
            meta = tmp_path / side / "checkpoints" / name / "babymerge_training.json"
            meta.write_text(json.dumps({"words_seen": 1000 * int(name[0])}))
    out = tmp_path / "out"
    config = SweepConfig(
        text=tmp_path / "text",
        multimodal=tmp_path / "mm",
        base=trained["init3"],
        methods=["linear"],
        alphas=[0.25, 0.5, 0.75],
        tasks=["weights_sum"],
        pairing=["aligned"],
        store=out / "results.jsonl",
        diagnose=True,
        diagnose_text=corpus,
        diagnose_max_tokens=1000,
        diagnose_max_length=32,
    )
    monkeypatch.setattr(stage, "Sweep", lambda c, progress: Sweep(c, CountingScorer, progress=progress))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outcome = stage.sweep_and_report(config, out, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert {out / "diagnostics.md", out / "diagnostics.csv"} <= set(outcome.files)
    with open(out / "diagnostics.csv", newline="") as handle:
        rows = {row["pair"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == ["text=1k+multimodal=1k", "text=2k+multimodal=2k"]
    for name in ("1k", "2k"):
        row = rows[f"text={name}+multimodal={name}"]
        assert {p.name for p in (out / "diagnostics" / row["pair"]).iterdir()} == PRODUCTS
        alone = tmp_path / f"alone{name}"
        args = [parts["text"][name], parts["mm"][name], "--base", trained["init3"], "--out", alone, "--text", corpus]
        args += ["--max-tokens", "1000", "--max-length", "32", "--alphas", "0.25,0.5,0.75", "--no-progress"]
        assert main(["diagnose", *map(str, args), "--threads", "1"]) == 0
        report = json.loads((alone / "diagnose.json").read_text())
        whole = report["weights"][-1]
        assert float(row["barrier_text"]) == pytest.approx(report["loss"]["text"]["barrier"], abs=1e-6)
        assert float(row["cosine"]) == pytest.approx(whole["cosine"], abs=1e-9) and row["barrier_captions"] == ""
        assert float(row["sign_conflict"]) == pytest.approx(whole["sign_conflict"])
        assert (row["text_words"], row["multimodal_words"]) == (str(1000 * int(name[0])),) * 2
        merges = [r for r in outcome.records if r["pair"] == row["pair"] and 0 < r["alpha"] < 1]
        top = max(merges, key=lambda r: r["value"])
        assert float(row["best weights_sum"]) == pytest.approx(100 * top["value"])
        assert row["best weights_sum at"] == f"linear {top['alpha']:g}"
    assert float(rows["text=1k+multimodal=1k"]["barrier_text"]) > 0.3  # two unrelated initialisations
    summary = (out / "diagnostics.md").read_text()
    assert "[text=1k+multimodal=1k](diagnostics/text=1k+multimodal=1k/diagnose.md)" in summary

    monkeypatch.setattr(diagnose_run, "diagnose", lambda *a, **k: pytest.fail("a diagnosed pair was diagnosed again"))
    again = stage.sweep_and_report(config, out, progress=False)
    assert out / "diagnostics.csv" in again.files and (out / "diagnostics.md").read_text() == summary


def test_sweep_diagnostics_are_refused_without_a_base_or_held_out_file(tmp_path):
    from babymerge.diagnose.sweep import check_held_out
    from babymerge.errors import BabymergeError
    from babymerge.sweep.run import SweepConfig

    fields = {"text": "t", "multimodal": "m", "store": tmp_path / "r.jsonl", "diagnose": True}
    with pytest.raises(ValueError, match="diagnose needs base"):
        SweepConfig(**fields)
    with pytest.raises(ValueError, match="diagnose_captions and diagnose_features go together"):
        SweepConfig(**fields, base="b", diagnose_captions="c.txt")
    with pytest.raises(BabymergeError, match=rf"^diagnose_text: {tmp_path / 'nothing.txt'} not found$"):
        check_held_out(SweepConfig(**fields, base="b", diagnose_text=tmp_path / "nothing.txt"))
    assert not SweepConfig(**fields | {"diagnose": False}).diagnose  # off by default: nothing to check
