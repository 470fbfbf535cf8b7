"""``babymerge push`` on what ``babymerge train`` and ``babymerge merge`` write: the README's commands, parents
told apart on the card, recipe comments left behind, random-backbone features stated."""

from __future__ import annotations

import re
import shlex
import shutil

import pytest
import torch
import yaml
from helpers import REPO, run_merge
from PIL import Image

from babymerge.cli import main
from babymerge.hub.card import local_names
from babymerge.hub.push import RECIPE_FILE, push


def readme_command(prefix: str) -> list[str]:
    """The README's ``babymerge ...`` command starting with ``prefix``, continuation lines joined, split."""
    text = re.sub(r"\\\n\s*", " ", (REPO / "README.md").read_text())
    [line] = [line for line in text.splitlines() if line.startswith(prefix)]
    return shlex.split(line)[1:]


def card_of(printed: str):
    from huggingface_hub import ModelCard

    return ModelCard(printed[printed.index("---") :])


@pytest.fixture(scope="module")
def readme_merge(make_checkpoint, tmp_path_factory):
    """The folders ``babymerge train`` writes for both runs, merged by the README's ``babymerge merge``."""
    root = tmp_path_factory.mktemp("readme")
    for run, seed in (("text", 61), ("multimodal", 62)):
        shutil.copytree(make_checkpoint(seed), root / "runs" / run / "checkpoints" / "final")
    (root / "merge_recipes").symlink_to(REPO / "merge_recipes")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert main(readme_command("babymerge merge ")) == 0
    return root


def test_readme_push_pattern_works_on_the_train_layout(readme_merge, monkeypatch, capsys):
    monkeypatch.chdir(readme_merge)
    capsys.readouterr()
    assert main(readme_command("babymerge push merged/ ")) == 0
    card = card_of(capsys.readouterr().out)
    assert card.data.base_model == ["your-name/babyllava-text", "your-name/babyllava-mm"]
    assert "- `your-name/babyllava-text`" in card.text and "- `your-name/babyllava-mm`" in card.text


def test_local_parents_are_told_apart_on_the_card(readme_merge, capsys):
    assert main(["push", str(readme_merge / "merged"), "someone/m", "--dry-run"]) == 0
    card = card_of(capsys.readouterr().out)
    assert "- `text/final`" in card.text and "- `multimodal/final`" in card.text
    assert card.data.base_model is None  # local parents are not Hub ids


@pytest.mark.parametrize(
    ("paths", "names"),
    [
        (
            ["/r/text_run/checkpoints/final", "/r/multimodal_run/checkpoints/final"],
            ["text_run/final", "multimodal_run/final"],
        ),
        (["/r/text/checkpoints/final", "/r/text/checkpoints/20M", "/r/init"], ["final", "20M", "init"]),
        (["/a/x/final", "/b/x/final", "/b/y/final"], ["a/x/final", "b/x/final", "y/final"]),
    ],
)
def test_local_names_are_the_shortest_distinguishing_tails(paths, names):
    assert list(local_names(paths).values()) == names


def test_recipe_comments_stay_behind(readme_merge):
    merged = readme_merge / "merged"
    local = (merged / RECIPE_FILE).read_text()
    assert "# Paths are placeholders" in local  # mergekit keeps the recipe file's comments
    uploads, card = push(merged, "someone/m", dry_run=True)
    [recipe] = [u.content.decode() for u in uploads if u.path_in_repo == RECIPE_FILE]
    for text in (recipe, card):
        assert "Paths are placeholders" not in text and "absolute local paths" not in text
    renamed = local.replace(str(readme_merge / "runs/text/checkpoints/final"), "text/final")
    renamed = renamed.replace(str(readme_merge / "runs/multimodal/checkpoints/final"), "multimodal/final")
    assert yaml.safe_load(recipe) == yaml.safe_load(renamed)  # the recipe's content, parents renamed
    assert recipe.strip() in card


def test_card_says_when_features_came_from_a_random_backbone(readme_merge, make_checkpoint, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        pixels = torch.randint(0, 256, (40, 40, 3), generator=torch.Generator().manual_seed(i), dtype=torch.uint8)
        Image.fromarray(pixels.numpy()).save(images / f"img{i}.png")
    features, init = tmp_path / "features.safetensors", tmp_path / "init"
    assert main(["features", str(images), "--out", str(features), "--random-backbone", "--no-progress"]) == 0
    init_args = ["init", "--tokenizer", str(make_checkpoint(63)), "--out", str(init), "--preset", "tiny"]
    assert main([*init_args, "--features", str(features)]) == 0
    shutil.copytree(init, tmp_path / "other")
    recipe = {
        "merge_method": "linear",
        "models": [{"model": str(p), "parameters": {"weight": 0.5}} for p in (init, tmp_path / "other")],
    }
    run_merge(recipe, tmp_path / "merged")
    _, card = push(tmp_path / "merged", "someone/m", dry_run=True)
    assert "RANDOMLY INITIALISED backbone" in card and "`random-tiny-dinov2-seed0`" in card
    method = card[card.index("## Method") : card.index("## Image features")]
    assert "| scope | parameters |" in method  # the method's parameters stay under its heading
    assert "DINOv2-large" not in card  # the usage names no backbone the model was not built with
    _, plain = push(readme_merge / "merged", "someone/m", dry_run=True)
    assert "RANDOMLY" not in plain and "Image features" not in plain


@pytest.fixture(scope="module")
def stock_merge(tmp_path_factory):
    """A stock LLaVA's language model averaged with a Llama's by ``mergekit-yaml`` (``llava_text`` recipe), then
    ``babymerge eval --save-to-model`` on text and raw-image tasks."""
    from helpers import WORDS, mergekit_yaml_in_process, render, save_llava, save_text_lm, word_tokenizer
    from test_stock_llava import layout

    root = tmp_path_factory.mktemp("stock")
    tokenizer = word_tokenizer(WORDS)
    llava = save_llava(root / "ckpt" / "llava", tokenizer, "llama", "clip", seed=7)
    llama = save_text_lm(root / "ckpt" / "llama", tokenizer, "llama", seed=8)
    (root / "llava_text").mkdir()
    for recipe, out in (("linear_alpha0.5.yml", "merged"), ("text_only_linear_alpha0.5.yml", "merged_lm")):
        paths = {"multimodal_model": llava, "text_model": llama}
        mergekit_yaml_in_process(render(f"llava_text/{recipe}", root, paths), root / out)
    tasks = "babylm_blimp_fast,babylm_caption_matching"
    args = ["eval", str(root / "merged"), "--tasks", tasks, "--data-dir", str(layout(root / "data"))]
    assert main([*args, "--out", str(root / "results"), "--save-to-model", "--no-progress"]) == 0
    return root


def run_usage(card, repo_id: str, folder, monkeypatch, tmp_path) -> None:
    """The card's Python usage, run on the local folder in place of the Hub id (a photo ``cat.jpg`` beside it)."""
    code = card.text.split("```python\n")[1].split("```")[0].replace(repo_id, str(folder))
    Image.new("RGB", (40, 30), (200, 120, 40)).save(tmp_path / "cat.jpg")
    monkeypatch.chdir(tmp_path)
    exec(code, {})


def test_a_stock_llava_merge_is_carded_with_both_parents_its_recipe_and_results(
    stock_merge, capsys, monkeypatch, tmp_path
):
    import json

    merged = stock_merge / "merged"
    parents = ["--parent", "llava=someone/llava", "--parent", "llama=someone/llama"]
    capsys.readouterr()
    assert main(["push", str(merged), "someone/llava-llama", "--dry-run", *parents]) == 0
    printed = capsys.readouterr().out
    assert str(stock_merge) not in printed
    card = card_of(printed)
    data = card.data
    assert (data.base_model, data.base_model_relation) == (["someone/llava", "someone/llama"], "merge")
    assert data.pipeline_tag == "image-text-to-text" and "llava" in data.tags and "babyllava" not in data.tags
    assert "A transformers LLaVA (`LlavaForConditionalGeneration`) merged with" in card.text
    saved = json.loads((merged / "eval_results.json").read_text())["results"]
    results = {(r.dataset_name, r.metric_type): r.metric_value for r in data.eval_results}
    assert results == {(t, m.split(",")[0]): v for t, metrics in saved.items() for m, v in metrics.items()}
    assert ("babylm_caption_matching", "acc") in results and ("babylm_blimp_fast", "acc") in results
    recipe = yaml.safe_load(card.text.split("```yaml\n")[1].split("```")[0])
    assert [m["model"] for m in recipe["models"]] == ["someone/llava", "someone/llama"]
    run_usage(card, "someone/llava-llama", merged, monkeypatch, tmp_path)


def test_a_merge_written_as_the_text_lm_is_carded_as_a_causal_lm(stock_merge, monkeypatch, tmp_path):
    _, text = push(stock_merge / "merged_lm", "someone/llama-merged", dry_run=True)
    card = card_of(text)
    assert card.data.pipeline_tag == "text-generation" and "babyllava" not in card.data.tags
    assert "A causal language model (`llama`) merged with" in card.text and "image_features" not in card.text
    run_usage(card, "someone/llama-merged", stock_merge / "merged_lm", monkeypatch, tmp_path)


def test_parents_named_relative_to_the_merge_folder_are_local_not_hub_ids(stock_merge, monkeypatch):
    """A recipe may name ``ckpt/llava`` (relative, as ``mergekit-yaml`` reads it): that is a folder, not a Hub id."""
    monkeypatch.chdir(stock_merge)
    recipe = {
        "merge_method": "linear",
        "parameters": {"normalize": False},
        "models": [{"model": f"ckpt/{name}", "parameters": {"weight": 0.5}} for name in ("llava", "llama")],
    }
    run_merge(recipe, stock_merge / "relative")
    card = card_of(push("relative", "someone/m", dry_run=True)[1])
    assert card.data.base_model is None and "- `llava`" in card.text and "- `llama`" in card.text
    named = push("relative", "someone/m", parents={"llava": "org/llava", "llama": "org/llama"}, dry_run=True)[1]
    assert card_of(named).data.base_model == ["org/llava", "org/llama"]
