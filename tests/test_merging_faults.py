"""Faults and bad recipes in a merge: one line naming the key, field or tensor, a non-zero exit, nothing left
behind; merged tensors finite; the black image's features bitwise; stale partial folders of killed merges
cleaned; the guard called on every merge and over every tensor."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from helpers import RECIPES, mergekit_yaml, mergekit_yaml_in_process, offline_env, weights

BLACK = "model.black_image_features"


@pytest.fixture(scope="module")
def trio(make_checkpoint, tmp_path_factory):
    """init, text, multimodal; a non-trivial black image (identical in all three, as the backbone makes it)."""
    black = torch.randn(1, 32, generator=torch.Generator().manual_seed(0))  # karcher moved it by 1.2e-7
    init, text, mm = (make_checkpoint(s, black_features=black) for s in (60, 61, 62))
    from babymerge.merging.fisher import fisher_file
    from babymerge.merging.gram import gram_file

    sample = tmp_path_factory.mktemp("sample") / "text.txt"
    sample.write_text("The cat sees a red ball.\nA dog runs to the big tree.\nThe bird sleeps.\n" * 2)
    grams = tmp_path_factory.mktemp("grams")
    for name, model in (("text", text), ("mm", mm)):
        gram_file(model, grams / f"{name}.safetensors", text=sample, batch_size=3)
        fisher_file(model, text=sample, progress=False)  # beside the model, where the fisher method reads it
    return {"init": init, "text": text, "mm": mm, "grams": grams}


def linear(trio, w_text: float, w_mm: float, **top) -> dict:
    return {
        "merge_method": "linear",
        "models": [
            {"model": str(trio["text"]), "parameters": {"weight": w_text}},
            {"model": str(trio["mm"]), "parameters": {"weight": w_mm}},
        ],
        **top,
    }


def write(recipe: dict | str, folder: Path, name: str = "recipe.yml") -> Path:
    path = folder / name
    path.write_text(recipe if isinstance(recipe, str) else yaml.safe_dump(recipe, sort_keys=False))
    return path


def nothing_left(parent: Path, out_name: str = "out") -> None:
    assert not (parent / out_name).exists()
    assert not [p.name for p in parent.iterdir() if p.name.startswith(f".{out_name}.")], "staging left behind"


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip() and "deprecated" not in line]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert len(lines) == 1, result.stderr
    return lines[0]


def cli_error(capsys) -> str:
    """The one error line of ``babymerge merge`` (stderr also carries mergekit's progress bars)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert "Traceback" not in err and len(lines) == 1, err[-2000:]
    assert lines[0].startswith("babymerge merge: error: ")
    return lines[0]


def in_process_error(recipe: Path, out: Path) -> str:
    from babymerge.errors import BabymergeError

    with pytest.raises(BabymergeError) as info:
        mergekit_yaml_in_process(recipe, out)
    message = str(info.value)
    assert "\n" not in message
    nothing_left(out.parent, out.name)
    return message


# 1. Output values -------------------------------------------------------------------------------------------


def test_zero_sum_weights_refused_up_front_by_mergekit_yaml(trio, tmp_path):
    result = mergekit_yaml(write(linear(trio, 1.0, -1.0), tmp_path), tmp_path / "out")
    line = one_error_line(result)
    assert line.startswith("Error: models:") and "sum to 0" in line and "normalize" in line
    nothing_left(tmp_path)


def babymerge_merge_error(trio, tmp_path: Path, capsys, text_weight: str, multimodal_weight: str) -> str:
    """``babymerge merge`` of a linear recipe with these weights: exit 2, one error line (returned), no output."""
    from babymerge.cli import main

    recipe = write(
        f"merge_method: linear\nmodels:\n  - model: /path/to/text_model\n    parameters: {{weight: {text_weight}}}\n"
        f"  - model: /path/to/multimodal_model\n    parameters: {{weight: {multimodal_weight}}}\n",
        tmp_path,
    )
    args = ["merge", str(recipe), str(tmp_path / "out"), "--model", f"text_model={trio['text']}"]
    assert main([*args, "--model", f"multimodal_model={trio['mm']}"]) == 2
    err = cli_error(capsys)
    nothing_left(tmp_path)
    return err


def test_zero_sum_weights_refused_by_babymerge_merge(trio, tmp_path, capsys):
    assert "sum to 0" in babymerge_merge_error(trio, tmp_path, capsys, "0.5", "-0.5")


def test_zero_sum_with_normalize_off_is_allowed(trio, tmp_path):
    mergekit_yaml_in_process(write(linear(trio, 1.0, -1.0, parameters={"normalize": False}), tmp_path), tmp_path / "o")
    out, wt, wm = weights(tmp_path / "o"), weights(trio["text"]), weights(trio["mm"])
    name = "model.language_model.layers.0.mlp.up_proj.weight"
    torch.testing.assert_close(out[name], wt[name] - wm[name], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("top", "weight"),
    [({"parameters": {"normalize": False}}, 1e39), ({"out_dtype": "float16"}, 1.0)],
    ids=["float32-overflow", "float16-cast"],
)
def test_non_finite_output_is_caught_whatever_the_cause(trio, tmp_path, top, weight):
    """Overflowing weights, or a cast to float16 of values past its range: no input holds NaN/Inf."""
    recipe = linear(trio, weight, weight, **top)
    if "out_dtype" in top:  # values past float16's range (65504) after the cast
        recipe["parameters"] = {"normalize": False}
        recipe["models"][0]["parameters"]["weight"] = 1e6
    message = in_process_error(write(recipe, tmp_path), tmp_path / "out")
    assert "merged tensor " in message and "NaN or Inf" in message and str(tmp_path / "out") in message


# 2-3. Recipe schema ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "path", "suggestion"),
    [
        (lambda r: r.update(paramters={"normalize": False}), "paramters", "parameters"),
        (lambda r: r.update(dtpye="float16"), "dtpye", "dtype"),
        (lambda r: r["models"][1].update(paramters={"weight": 1}), "models[1].paramters", "parameters"),
        (lambda r: r.update(tokenizer={"sorce": "base"}), "tokenizer.sorce", "source"),
        (
            lambda r: r["models"][0]["parameters"].update(weight=[{"filter": "mlp", "valeu": 0.2}, {"value": 0.5}]),
            "models[0].parameters.weight[0].valeu",
            "value",
        ),
    ],
    ids=["top-parameters", "top-dtype", "model-entry", "tokenizer", "conditional"],
)
def test_unknown_keys_refused_at_every_level(trio, tmp_path, edit, path, suggestion):
    recipe = linear(trio, 0.5, 0.5)
    edit(recipe)
    message = in_process_error(write(recipe, tmp_path), tmp_path / "out")
    assert f"{path}: unknown recipe key" in message and f"did you mean {suggestion!r}" in message


def test_unknown_key_in_modules_slices(trio, tmp_path):
    recipe = {
        "merge_method": "linear",
        "modules": {
            name: {"models": [{"model": str(trio[m]), "parameters": {"weight": 0.5}} for m in ("text", "mm")]}
            for name in ("text_decoder", "multi_modal_projector", "black_image")
        },
    }
    recipe["modules"]["black_image"]["models"][0]["modle"] = "x"
    message = in_process_error(write(recipe, tmp_path), tmp_path / "out")
    assert message.startswith("modules.black_image.models[0].modle:") and "did you mean 'model'" in message


def test_top_level_typo_through_the_command_is_one_line(trio, tmp_path):
    line = one_error_line(mergekit_yaml(write(linear(trio, 0.3, 0.7, dtpye="float16"), tmp_path), tmp_path / "out"))
    assert line == "Error: dtpye: unknown recipe key; did you mean 'dtype'?"
    nothing_left(tmp_path)


def test_string_weight_names_the_field(trio, tmp_path):
    message = in_process_error(write(linear(trio, "abc", 0.5), tmp_path), tmp_path / "out")
    assert message.startswith("models[0].parameters.weight: invalid value 'abc'")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("weight: abc", "models[0].parameters.weight: invalid value 'abc'"),
        ("layer_range: x", "slices[0].sources[0].layer_range: Input should be a valid tuple (got 'x')"),
        ("merge_method: [1]", "merge_method: Input should be a valid string"),
    ],
    ids=["weight", "layer_range", "merge_method"],
)
def test_invalid_values_through_the_command_are_one_line(trio, tmp_path, text, fragment):
    if text.startswith("weight"):
        recipe = linear(trio, "abc", 0.5)
    elif text.startswith("layer_range"):
        recipe = {"merge_method": "linear", "slices": [{"sources": [{"model": str(trio["text"]), "layer_range": "x"}]}]}
    else:
        recipe = {**linear(trio, 0.5, 0.5), "merge_method": [1]}
    line = one_error_line(mergekit_yaml(write(recipe, tmp_path), tmp_path / "out"))
    assert fragment in line, line
    nothing_left(tmp_path)


def test_babymerge_merge_string_weight_is_one_line(trio, tmp_path, capsys):
    err = babymerge_merge_error(trio, tmp_path, capsys, "abc", "0.5")
    assert "models[0].parameters.weight: invalid value 'abc'" in err


# 6. --model NAME that the recipe does not use -----------------------------------------------------------------


def test_babymerge_merge_refuses_an_unused_model_name(trio, tmp_path, capsys):
    from babymerge.cli import main

    args = ["merge", str(RECIPES / "linear_alpha0.5.yml"), str(tmp_path / "out")]
    args += ["--model", f"text_model={trio['text']}", "--model", f"multimodal_model={trio['mm']}"]
    assert main([*args, "--model", f"init_model={trio['init']}"]) == 2
    err = cli_error(capsys)
    assert "--model init_model" in err and "no placeholder /path/to/init_model" in err
    nothing_left(tmp_path)


# 5. Full disk ----------------------------------------------------------------------------------------------


def test_full_disk_is_one_line_exit_2_and_nothing_left(trio, tmp_path, monkeypatch, capsys):
    import safetensors.torch

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 100)  # a partly written shard, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    from babymerge.cli import main

    args = ["merge", str(RECIPES / "linear_alpha0.3.yml"), str(tmp_path / "out")]
    args += ["--model", f"text_model={trio['text']}", "--model", f"multimodal_model={trio['mm']}"]
    assert main(args) == 2
    err = cli_error(capsys)
    assert "no space left on device" in err and str(tmp_path / "out") in err
    nothing_left(tmp_path)


# 7. The black image's features ---------------------------------------------------------------------------------


def all_method_recipes(trio) -> dict[str, dict]:
    from mergekit.merge_methods import registry
    from mergekit.merge_methods.base import BasePolicy

    from babymerge.merging import register

    register()
    recipes = {}
    for method in registry.registered_methods():
        spec = method.spec
        two_only = spec.contract.max_inputs == 2
        recipe: dict = {"merge_method": spec.name, "dtype": "float32"}
        models = ["text"] if spec.contract.max_inputs == 1 else ["text", "mm"]
        if spec.contract.base == BasePolicy.REQUIRED:
            recipe["base_model"] = str(trio["mm" if two_only else "init"])
        params = {p.name for p in spec.parameters if p.required}
        recipe["models"] = []
        for m in models:
            own = {"weight": 0.5} if "weight" in params else {}
            if "gram" in {p.name for p in spec.parameters}:  # RegMean's Gram files, kept apart from the folders
                own["gram"] = str(trio["grams"] / f"{m}.safetensors")
            recipe["models"].append({"model": str(trio[m]), "parameters": own})
        if "t" in params:
            recipe["parameters"] = {"t": 0.5}
        recipes[spec.name] = recipe
    return recipes


def test_black_image_comes_through_every_method_bitwise(trio, tmp_path):
    recipes = all_method_recipes(trio)
    assert len(recipes) >= 21 and {"karcher", "multislerp", "regmean"} <= set(recipes)
    expected = weights(trio["text"])[BLACK]
    changed = []
    for name, recipe in recipes.items():
        out = tmp_path / name
        mergekit_yaml_in_process(write(recipe, tmp_path, f"{name}.yml"), out, "--random-seed", "1")
        got = weights(out)[BLACK]
        if not (got.dtype == expected.dtype and torch.equal(got, expected)):
            changed.append(name)
    assert not changed, f"methods that changed {BLACK}: {changed}"


def test_models_with_different_black_images_are_refused(trio, make_checkpoint, tmp_path):
    other = make_checkpoint(63, black_features=torch.ones(1, 32))
    recipe = linear(trio, 0.5, 0.5)
    recipe["models"][1]["model"] = str(other)
    message = in_process_error(write(recipe, tmp_path), tmp_path / "out")
    assert message.startswith(f"{other}: tensor {BLACK} differs from")


# 9. The guard runs on every merge and looks at every tensor ---------------------------------------------------


@pytest.mark.parametrize("which", [0, -1], ids=["first", "last"])
def test_merge_that_drops_a_tensor_is_refused(trio, tmp_path, monkeypatch, which):
    """mergekit silently dropping a tensor (the first or last in the guard's order) fails the merge."""
    from mergekit.io.tensor_writer import TensorWriter

    dropped = sorted(weights(trio["text"]))[which]
    original = TensorWriter.save_tensor

    def save_tensor(self, name, tensor, clone=False):
        if name != dropped:
            original(self, name, tensor, clone=clone)

    monkeypatch.setattr(TensorWriter, "save_tensor", save_tensor)
    message = in_process_error(write(linear(trio, 0.5, 0.5), tmp_path), tmp_path / "out")
    assert f"tensor {dropped} did not reach the merged output" in message


# 4. SIGKILL leaves a partial folder; the next merge into the same parent removes it (not a live one's) ----------

HANGING_MERGE = """
import sys, time
from mergekit.io.tensor_writer import TensorWriter
TensorWriter.save_tensor = lambda *args, **kwargs: time.sleep(600)
from mergekit.scripts.run_yaml import main
main(sys.argv[1:])
"""


def hanging_merge(recipe: Path, out: Path) -> tuple[subprocess.Popen, Path]:
    """A real mergekit-yaml merge that stops while writing; returns the process and its partial folder."""
    env = offline_env()
    args = [sys.executable, "-c", HANGING_MERGE, str(recipe), str(out), "--quiet"]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        partial = [p for p in out.parent.glob(f".{out.name}.*.partial") if (p / out.name).is_dir()]
        if partial:
            return process, partial[0]
        assert process.poll() is None, "merge ended before writing"
        time.sleep(0.05)
    process.kill()
    raise AssertionError("no partial folder appeared")


def test_stale_partial_of_a_killed_merge_is_removed_but_not_a_live_one(trio, tmp_path):
    recipe = write(linear(trio, 0.5, 0.5), tmp_path)
    parent = tmp_path / "merges"
    parent.mkdir()
    killed, stale = hanging_merge(recipe, parent / "a")
    live = None
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        assert stale.is_dir()  # SIGKILL: no clean-up ran
        live, in_progress = hanging_merge(recipe, parent / "c")
        mergekit_yaml_in_process(recipe, parent / "b")
        assert not stale.exists(), "stale partial folder of the killed merge left"
        assert in_progress.is_dir(), "partial folder of a running merge removed"
        assert sorted(p.name for p in parent.iterdir() if not p.name.startswith(".c.")) == ["b"]
        assert weights(parent / "b").keys() == weights(trio["text"]).keys()
    finally:
        for process in (killed, live):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=30)


# The same merge is the same bytes on every run (what a rerun after a kill is compared with) ------------------


def test_same_bytes_whatever_order_mergekit_lists_the_models_in(trio, tmp_path, monkeypatch):
    """mergekit lists a recipe's models from a set (the order changes with PYTHONHASHSEED) and its model card
    followed that order: a rerun's README.md differed. Both orders must give the same files."""
    from mergekit.config import MergeConfiguration

    original = MergeConfiguration.referenced_models
    recipe = write(linear(trio, 0.3, 0.7), tmp_path)
    folders = []
    for reverse in (False, True):
        order = lambda self, reverse=reverse: sorted(original(self), key=str, reverse=reverse)  # noqa: E731
        monkeypatch.setattr(MergeConfiguration, "referenced_models", order)
        folders.append(tmp_path / str(reverse) / "out")
        mergekit_yaml_in_process(recipe, folders[-1])
    names = sorted(p.name for p in folders[0].iterdir())
    assert names == sorted(p.name for p in folders[1].iterdir()) and "README.md" in names
    for name in names:
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name
