"""LLaVA + text-only merges that must be refused: one line naming the field or tensor, nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import WORDS, mergekit_yaml, save_llava, save_text_lm, word_tokenizer
from safetensors.torch import load_file, save_file


@pytest.fixture(scope="module")
def parents(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("llava_text_refusals")
    tok = word_tokenizer(WORDS)
    other_words = word_tokenizer([w.upper() for w in WORDS])  # same size, other tokens
    bigger = word_tokenizer(WORDS, extra=("<extra>",))
    out = {
        "llava": save_llava(root / "llava", tok, "llama", "clip", seed=1),
        "llama": save_text_lm(root / "llama", tok, "llama", seed=2),
        "qwen2": save_text_lm(root / "qwen2", tok, "qwen2", seed=3),
        "wider": save_text_lm(root / "wider", tok, "llama", seed=4, hidden_size=48),
        "deeper": save_text_lm(root / "deeper", tok, "llama", seed=7, num_hidden_layers=4),
        "bigger_vocab": save_text_lm(root / "bigger_vocab", bigger, "llama", seed=5),
        "other_tokens": save_text_lm(root / "other_tokens", other_words, "llama", seed=6),
    }
    lonely = shutil.copytree(out["llama"], root / "lonely")
    tensors = load_file(str(lonely / "model.safetensors"))
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, str(lonely / "model.safetensors"), metadata={"format": "pt"})
    out["lonely"] = lonely
    return out


def merge(first: Path, second: Path, out: Path) -> None:
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    recipe = {
        "merge_method": "linear",
        "dtype": "float32",
        "models": [{"model": str(p), "parameters": {"weight": 0.5}} for p in (first, second)],
    }
    run_merge(MergeConfiguration.model_validate(recipe), str(out), options=MergeOptions(quiet=True))


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir()] == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("qwen2", r"llava vs \S+/qwen2: text_config\.model_type vs model_type: 'llama' vs 'qwen2' \(parents must"),
        ("wider", r"llava vs \S+/wider: text_config\.hidden_size vs hidden_size: 32 vs 48"),
        ("deeper", r"llava vs \S+/deeper: text_config\.num_hidden_layers vs num_hidden_layers: 2 vs 4"),
        ("bigger_vocab", r"llava vs \S+/bigger_vocab: text_config\.vocab_size vs vocab_size: 22 vs 23"),
        ("other_tokens", r"llava vs \S+/other_tokens: tokenizers differ: 17 of 22 ids map to different tokens"),
        (
            "lonely",
            r"llava: language-model tensor language_model\.model\.layers\.1\.mlp\.up_proj\.weight has no counterpart "
            r"in .*lonely \(looked for model\.layers\.1\.mlp\.up_proj\.weight\)",
        ),
    ],
)
def test_mismatched_pairs_are_refused(parents, tmp_path, text, message):
    from babymerge.errors import BabymergeError

    out = tmp_path / "merged" / "out"
    out.parent.mkdir()
    with pytest.raises(BabymergeError, match=message) as caught:
        merge(parents["llava"], parents[text], out)
    assert "\n" not in str(caught.value)
    assert_nothing_written(out)


def drop_from_plan(monkeypatch, name: str) -> None:
    """Simulate an architecture that forgets one multimodal tensor (what mergekit would silently drop)."""
    from babymerge.merging import llava_text

    build = llava_text.build_architecture

    def forgetting(sides, options):
        sides[0].extra.remove(name)
        return build(sides, options)

    monkeypatch.setattr(llava_text, "build_architecture", forgetting)


VISION = "vision_tower.encoder.layers.1.mlp.fc2.weight"


def test_a_vision_tensor_that_would_be_lost_is_refused_before_merging(parents, tmp_path, monkeypatch):
    from babymerge.errors import BabymergeError

    drop_from_plan(monkeypatch, VISION)
    out = tmp_path / "merged" / "out"
    out.parent.mkdir()
    with pytest.raises(BabymergeError, match=rf"llava: vision/projector tensor {VISION} would be lost"):
        merge(parents["llava"], parents["llama"], out)
    assert_nothing_written(out)


def test_the_guard_catches_a_vision_tensor_missing_from_the_output(parents, tmp_path, monkeypatch):
    from babymerge.errors import BabymergeError
    from babymerge.merging import llava_text

    drop_from_plan(monkeypatch, VISION)
    monkeypatch.setattr(llava_text, "check_covered", lambda plan, options: None)
    out = tmp_path / "merged" / "out"
    out.parent.mkdir()
    with pytest.raises(BabymergeError, match=rf"llava: vision/projector tensor {VISION} did not reach the merged"):
        merge(parents["llava"], parents["llama"], out)
    assert_nothing_written(out)


def test_console_script_prints_one_error_line_and_exits_1(parents, tmp_path):
    recipe = tmp_path / "recipe.yml"
    recipe.write_text(
        f"merge_method: linear\nmodels:\n  - model: {parents['llava']}\n    parameters: {{weight: 0.5}}\n"
        f"  - model: {parents['qwen2']}\n    parameters: {{weight: 0.5}}\n"
    )
    out = tmp_path / "merged" / "out"
    out.parent.mkdir()
    done = mergekit_yaml(recipe, out)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr[-2000:]
    assert "text_config.model_type vs model_type: 'llama' vs 'qwen2'" in errors[0], errors[0]
    assert "Traceback" not in done.stderr
    assert_nothing_written(out)


def test_a_different_added_token_at_the_same_id_is_refused(tmp_path):
    from babymerge.errors import BabymergeError

    tok_mm, tok_text = word_tokenizer(WORDS), word_tokenizer(WORDS)
    tok_mm.add_tokens(["<video>"], special_tokens=True)
    tok_text.add_tokens(["<tool>"], special_tokens=True)
    llava = save_llava(tmp_path / "llava", tok_mm, "llama", "clip", seed=1)
    text = save_text_lm(tmp_path / "text", tok_text, "llama", seed=2)
    out = tmp_path / "merged" / "out"
    out.parent.mkdir()
    message = r"llava vs \S+/text: tokenizers differ: 1 of 23 ids map to different tokens \(id 22: '<video>' vs "
    with pytest.raises(BabymergeError, match=message):
        merge(llava, text, out)
    assert_nothing_written(out)
