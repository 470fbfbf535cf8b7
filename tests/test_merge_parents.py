"""Parents that cannot be merged, refused before any work on every merge path (``mergekit-yaml``, ``babymerge
merge``, mergekit's Python API, LLaVA + text-only pairs, the sweep) in one line naming both folders and what
differs: another tokenizer of the same size, another depth; and ``babymerge merge --out-shard-size``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from helpers import RECIPES, CountingScorer, mergekit_yaml, save_llama_like, save_text_lm, synthetic_corpus
from helpers import run_merge as run
from test_merging_faults import cli_error, nothing_left, one_error_line, write

from babymerge.errors import BabymergeError
from babymerge.sweep.merge import MULTIMODAL, TEXT

LAYERS = "text_config.num_hidden_layers: 2 vs 4"


def save(tokenizer, out: Path, seed: int, layers: int | None = None) -> Path:
    """A tiny babyllava checkpoint of ``tokenizer`` (``layers``: another language-model depth)."""
    from babymerge.modeling import BabyLlavaForConditionalGeneration
    from babymerge.training.init import init_model, save_checkpoint

    model = init_model(tokenizer, "tiny", seed=seed)
    if layers is not None:
        model.config.text_config.num_hidden_layers = layers
        torch.manual_seed(seed)
        model = BabyLlavaForConditionalGeneration(model.config)
    save_checkpoint(model, tokenizer, out)
    return out


@pytest.fixture(scope="module")
def other_tokenizer(tmp_path_factory, tiny_tokenizer):
    """A BPE of conftest's size trained on another generated corpus (every word spelt backwards)."""
    from babymerge.training.tokenizer import text_files, train_tokenizer

    corpus = synthetic_corpus(tmp_path_factory.mktemp("backwards"))
    text = (corpus / "toy.train").read_text()
    (corpus / "toy.train").write_text("\n".join(" ".join(w[::-1] for w in line.split()) for line in text.splitlines()))
    tokenizer = train_tokenizer(text_files(corpus), vocab_size=300, min_frequency=1, progress=False)
    assert len(tokenizer) == len(tiny_tokenizer)  # the case the issue reports: same size, other tokens
    return tokenizer


@pytest.fixture(scope="module")
def other(tmp_path_factory, other_tokenizer) -> Path:
    """A babyllava of conftest's shape whose tokenizer is :func:`other_tokenizer`."""
    return save(other_tokenizer, tmp_path_factory.mktemp("other") / "other", seed=71)


@pytest.fixture(scope="module")
def deeper(tmp_path_factory, tiny_tokenizer) -> Path:
    """A babyllava like conftest's but with 4 language-model layers instead of 2."""
    return save(tiny_tokenizer, tmp_path_factory.mktemp("deeper") / "deeper", seed=72, layers=4)


@pytest.fixture(scope="module")
def differing_ids(tiny_tokenizer, other_tokenizer) -> str:
    """``N of 300 ids map to different tokens``, counted here with transformers."""
    n = len(tiny_tokenizer)
    changed = sum(tiny_tokenizer.convert_ids_to_tokens(i) != other_tokenizer.convert_ids_to_tokens(i) for i in range(n))
    assert 0 < changed < n
    return f"{changed} of {n} ids map to different tokens"


def linear(*folders: Path, **top) -> dict:
    models = [{"model": str(f), "parameters": {"weight": 0.5}} for f in folders]
    return {"merge_method": "linear", "models": models, **top}


def refused(recipe: dict, out: Path) -> str:
    """Python API (the guarded ``run_merge``): a one-line BabymergeError, nothing written."""
    with pytest.raises(BabymergeError) as caught:
        run(recipe, out)
    message = str(caught.value)
    assert "\n" not in message
    nothing_left(out.parent, out.name)
    return message


def merge_command(recipe: str, tmp_path: Path, *models: str) -> list[str]:
    args = ["merge", str(RECIPES / recipe), "--out", str(tmp_path / "out"), "--no-progress"]
    for model in models:
        args += ["--model", model]
    return args


def sweep(text: Path, multimodal: Path, tmp_path: Path, base: Path | None = None):
    from babymerge.sweep.run import Sweep, SweepConfig

    config = SweepConfig(
        text=text, multimodal=multimodal, base=base, methods=["linear"], alphas=[0.5], tasks=["weights_sum"],
        store=tmp_path / "results.jsonl",
    )  # fmt: skip
    return Sweep(config, scorer_factory=CountingScorer, progress=False)


# -- another tokenizer of the same size -------------------------------------------------------------------------


def test_python_api_refuses_another_tokenizer(models, other, differing_ids, tmp_path):
    message = refused(linear(models[TEXT], other), tmp_path / "out")
    assert differing_ids in message and str(models[TEXT]) in message and str(other) in message, message


def test_a_base_model_with_another_tokenizer_is_refused(models, other, differing_ids, tmp_path):
    recipe = linear(models[TEXT], models[MULTIMODAL], merge_method="task_arithmetic", base_model=str(other))
    message = refused(recipe, tmp_path / "out")
    assert differing_ids in message and str(other) in message, message


def test_mergekit_yaml_refuses_another_tokenizer(models, other, differing_ids, tmp_path):
    line = one_error_line(mergekit_yaml(write(linear(other, models[MULTIMODAL]), tmp_path), tmp_path / "out"))
    assert line.startswith("Error: ") and differing_ids in line and str(other) in line, line
    nothing_left(tmp_path)


def test_babymerge_merge_refuses_another_tokenizer(models, other, differing_ids, tmp_path, capsys):
    from babymerge.cli import main

    parents = (f"text_model={other}", f"multimodal_model={models[MULTIMODAL]}")
    args = merge_command("linear_alpha0.5.yml", tmp_path, *parents)
    assert main(args) == 2
    line = cli_error(capsys)
    assert differing_ids in line and str(other) in line and str(models[MULTIMODAL]) in line, line
    nothing_left(tmp_path)


def test_sweep_refuses_another_tokenizer_before_loading_anything(models, other, differing_ids, tmp_path):
    with pytest.raises(BabymergeError, match=differing_ids) as caught:
        sweep(other, models[MULTIMODAL], tmp_path)
    assert str(other) in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "results.jsonl").exists()


def test_sweep_refuses_a_base_with_another_tokenizer(models, other, differing_ids, tmp_path):
    with pytest.raises(BabymergeError, match=differing_ids):
        sweep(models[TEXT], models[MULTIMODAL], tmp_path, base=other)


def test_llava_text_pair_with_another_tokenizer_is_refused(models, other, differing_ids, tmp_path):
    llama = save_llama_like(other, tmp_path / "llama", seed=73)  # other's shape and tokenizer
    message = refused(linear(models[MULTIMODAL], llama, dtype="float32"), tmp_path / "out")
    assert differing_ids in message and str(llama) in message, message


def test_what_differs_beyond_the_ids(models, tmp_path):
    """Reformatting, padding and truncation are not a difference; reordered BPE merges and a token that is
    special in one tokenizer only are; a parent without tokenizer.json is not compared."""
    from babymerge.merging.parents import check_same_tokenizer

    def variant(name: str, edit) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        data = json.loads((models[TEXT] / "tokenizer.json").read_text())
        edit(data)
        (folder / "tokenizer.json").write_text(json.dumps(data, indent=4, sort_keys=True))
        return folder

    padded = variant("padded", lambda d: d.update(padding={"strategy": "BatchLongest"}, truncation={"max_length": 8}))
    check_same_tokenizer([models[TEXT], padded])
    check_same_tokenizer([models[TEXT], tmp_path])  # no tokenizer.json: nothing to compare

    def swap_merges(data):
        merges = data["model"]["merges"]
        merges[5], merges[6] = merges[6], merges[5]

    with pytest.raises(BabymergeError, match=r"same vocabulary but 2 of \d+ BPE merges differ \(merge 5: "):
        check_same_tokenizer([models[TEXT], variant("swapped", swap_merges)])

    def unspecial(data):
        data["added_tokens"][-1]["special"] = False

    with pytest.raises(BabymergeError, match=r"token '<image>' is special in only one of them"):
        check_same_tokenizer([models[TEXT], variant("unspecial", unspecial)])


# -- another depth ------------------------------------------------------------------------------------------------


def test_mergekit_yaml_names_the_depths(models, deeper, tmp_path):
    line = one_error_line(mergekit_yaml(write(linear(deeper, models[TEXT]), tmp_path), tmp_path / "out"))
    assert LAYERS in line or "text_config.num_hidden_layers: 4 vs 2" in line, line
    assert str(deeper) in line and str(models[TEXT]) in line
    nothing_left(tmp_path)


def test_babymerge_merge_names_the_depths(models, deeper, tmp_path, capsys):
    from babymerge.cli import main

    args = merge_command("linear_alpha0.5.yml", tmp_path, f"text_model={models[TEXT]}", f"multimodal_model={deeper}")
    assert main(args) == 2
    line = cli_error(capsys)
    assert (LAYERS in line or "text_config.num_hidden_layers: 4 vs 2" in line) and str(deeper) in line, line
    nothing_left(tmp_path)


def test_sweep_names_the_depths_before_loading_anything(models, deeper, tmp_path):
    with pytest.raises(BabymergeError, match=LAYERS) as caught:
        sweep(models[TEXT], deeper, tmp_path)
    assert str(deeper) in str(caught.value) and str(models[TEXT]) in str(caught.value)


def test_same_message_whatever_the_model_order(models, deeper, tmp_path):
    """mergekit lists a recipe's models from a set: the message must not depend on which comes first."""
    a = refused(linear(models[TEXT], deeper), tmp_path / "a")
    b = refused(linear(deeper, models[TEXT]), tmp_path / "b")
    assert a == b and ("num_hidden_layers: 2 vs 4" in a or "num_hidden_layers: 4 vs 2" in a), a


# -- babymerge merge --out-shard-size ---------------------------------------------------------------------------


def test_babymerge_merge_out_shard_size_shards_the_same_merge(models, tmp_path):
    from babymerge.cli import main
    from babymerge.formats.checkpoint import read_state

    parents = (f"text_model={models[TEXT]}", f"multimodal_model={models[MULTIMODAL]}")
    assert main(merge_command("linear_alpha0.5.yml", tmp_path / "whole", *parents)) == 0
    sharded = [*merge_command("linear_alpha0.5.yml", tmp_path / "sharded", *parents), "--out-shard-size", "50K"]
    assert main(sharded) == 0
    shards = sorted((tmp_path / "sharded" / "out").glob("model-*.safetensors"))
    assert len(shards) > 1 and not (tmp_path / "sharded" / "out" / "model.safetensors").exists()
    whole, parts = read_state(tmp_path / "whole" / "out"), read_state(tmp_path / "sharded" / "out")
    assert whole.keys() == parts.keys()
    for name, tensor in whole.items():
        assert torch.equal(tensor, parts[name]), name


def test_babymerge_merge_refuses_a_bad_shard_size(models, tmp_path, capsys):
    from babymerge.cli import main

    parents = (f"text_model={models[TEXT]}", f"multimodal_model={models[MULTIMODAL]}")
    with pytest.raises(SystemExit) as caught:
        main([*merge_command("linear_alpha0.5.yml", tmp_path, *parents), "--out-shard-size", "5X"])
    assert caught.value.code == 2
    assert "--out-shard-size: expected a number of parameters such as 64M" in capsys.readouterr().err
    nothing_left(tmp_path)


# -- a size field left to its default ------------------------------------------------------------------------------


def edited(source: Path, folder: Path, edit) -> Path:
    """A copy of the model folder ``source`` whose config.json ``edit`` changed in place."""
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_size_field_left_out_counts_with_its_default(models, tmp_path):
    """Explicit True vs a tie_word_embeddings left out of text_config (LlamaConfig's default: False) is refused."""
    tied = edited(models[TEXT], tmp_path / "tied", lambda c: c["text_config"].update(tie_word_embeddings=True))
    default = edited(models[TEXT], tmp_path / "default", lambda c: c["text_config"].pop("tie_word_embeddings"))
    message = refused(linear(tied, default), tmp_path / "out")
    assert re.search(r"text_config.tie_word_embeddings: (True vs False|False vs True)", message), message
    assert str(default) in message and str(tied) in message


def test_size_fields_compare_with_defaults_filled_in(tiny_tokenizer, tmp_path):
    """A text-only Llama: head_dim left out equals its default (hidden / heads), so it is no difference;
    num_key_value_heads left out means as many as attention heads (4), not the other's 2."""
    from babymerge.merging.checks import read_model
    from babymerge.merging.parents import check_same_size

    four = save_text_lm(tmp_path / "four", tiny_tokenizer, "llama", 0, num_key_value_heads=4)
    check_same_size([read_model(four), read_model(edited(four, tmp_path / "no_head_dim", lambda c: c.pop("head_dim")))])
    no_kv = edited(four, tmp_path / "no_kv", lambda c: c.pop("num_key_value_heads"))
    two = save_text_lm(tmp_path / "two", tiny_tokenizer, "llama", 0)  # helpers.LM_KV: 2 key-value heads
    with pytest.raises(BabymergeError, match="num_key_value_heads: 2 vs 4"):
        check_same_size([read_model(two), read_model(no_kv)])
