"""The start-up hook: the unmodified ``mergekit-yaml`` command merges babyllava and reports bad input in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import mergekit_yaml, render, weights
from safetensors.torch import save_file

from babymerge.sweep.merge import MULTIMODAL, TEXT


def test_hook_is_lazy_at_start_up():
    names = ("_babymerge_mergekit_autoload", "babymerge", "mergekit")
    code = f"import sys; print(*[name in sys.modules for name in {names!r}])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "False", "False"], "babymerge-mergekit.pth is not installed"


def test_importing_mergekit_registers_babymerge():
    code = (
        "from mergekit.architecture.json_definitions import NAME_TO_ARCH; import mergekit.merge as m; "
        "from mergekit.merge_methods import registry; "
        "print('BabyLlavaForConditionalGeneration' in NAME_TO_ARCH, m.run_merge.__module__, "
        "'regmean' in [x.spec.name for x in registry.registered_methods()])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "babymerge.merging.guarded", "True"]


@pytest.fixture(scope="module")
def pair(models):
    """The text-only and the multimodal parent of conftest's ``models``."""
    return models[TEXT], models[MULTIMODAL]


def test_unmodified_mergekit_yaml_merges_babyllava(pair, tmp_path):
    text, mm = pair
    recipe = render("linear_alpha0.3.yml", tmp_path, {"text_model": text, "multimodal_model": mm})
    result = mergekit_yaml(recipe, tmp_path / "out")
    assert result.returncode == 0, result.stderr[-2000:]
    out, wt, wm = weights(tmp_path / "out"), weights(text), weights(mm)
    assert set(out) == set(wt)
    for name in out:
        assert (out[name] - (0.3 * wt[name] + 0.7 * wm[name])).abs().max() <= 1e-6, name
    assert (tmp_path / "out" / "modeling_babyllava.py").exists()


def test_mergekit_yaml_reports_bad_input_in_one_line(pair, tmp_path):
    text, mm = pair
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in mm.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    tensors = weights(broken)
    tensors["model.multi_modal_projector.linear_2.bias"][0] = float("nan")
    save_file(tensors, str(broken / "model.safetensors"))
    recipe = render("linear_alpha0.5.yml", tmp_path, {"text_model": text, "multimodal_model": broken})
    result = mergekit_yaml(recipe, tmp_path / "out")
    lines = [line for line in result.stderr.splitlines() if line.strip() and "deprecated" not in line]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert str(broken) in lines[0] and "model.multi_modal_projector.linear_2.bias" in lines[0]
    assert not (tmp_path / "out").exists()
