"""No-image controls of the image tasks (``T_no_image``) on generated captions and features: the control sees the
black image on every item, whatever the feature file, and ``image_effect`` says whether images changed choices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import WORDS, resps

from babymerge.evaluation.controls import control_of, image_effect, with_controls
from babymerge.features.store import FeatureFile

TASK = "babylm_caption_matching_fast"


@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation_data")
    folder = root / "extra_eval" / "caption_matching"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = [f"scene{i}.jpg" for i in range(12)]
    lines = ["image,caption"] + [f"{image},{' '.join(rng.choice(WORDS, 4))}." for image in images]
    (folder / "captions.txt").write_text("\n".join(lines) + "\n")
    return root, images


def features_for(images: list[str], seed: int, black: torch.Tensor | None = None) -> FeatureFile:
    generator = torch.Generator().manual_seed(seed)
    feats = 3 * torch.randn(len(images), 1, 32, generator=generator)
    black = torch.zeros(1, 32) if black is None else black
    return FeatureFile(images, feats, black)


def samples(out: dict, task: str) -> list[dict]:
    return sorted(out["samples"][task], key=lambda s: s["doc_id"])


def test_the_control_sees_the_black_image_whatever_the_features(captions, tiny_tokenizer):
    from babymerge.evaluation import evaluate
    from babymerge.training.init import init_model

    root, images = captions
    model = init_model(tiny_tokenizer, "tiny", seed=3).eval()
    black = model.model.black_image_features.detach().clone()
    tasks = with_controls([TASK])
    assert tasks == [TASK, TASK + "_no_image"]
    runs = [
        evaluate(model, tiny_tokenizer, tasks, data_dir=root, features=f, log_samples=True, batch_size=4)
        for f in (features_for(images, 1), features_for(images, 2))
    ]
    all_black = FeatureFile(images, black.unsqueeze(0).repeat(len(images), 1, 1), black)
    reference = evaluate(model, tiny_tokenizer, [TASK], data_dir=root, features=all_black, log_samples=True)
    expected = [resps(s) for s in samples(reference, TASK)]
    for run in runs:
        control = samples(run, TASK + "_no_image")
        assert [s["doc"] for s in control] == [s["doc"] for s in samples(run, TASK)]  # the same items
        assert np.allclose([resps(s) for s in control], expected, atol=1e-5)
    # the task itself does see the images: other features, other log-probs
    first, second = ([resps(s) for s in samples(run, TASK)] for run in runs)
    assert not np.allclose(first, second, atol=1e-3)


def test_image_effect_in_words():
    assert control_of("babylm_winoground") == "babylm_winoground_no_image"
    assert control_of("babylm_blimp_fast") is None
    ignores = image_effect(TASK, [1.0, 0.0] * 40, [1.0, 0.0] * 40)
    assert ignores.changed == 0 and "changed none of 80 choices" in ignores.sentence()
    helps = image_effect(TASK, [1.0] * 70 + [0.0] * 10, [1.0, 0.0] * 40)
    assert helps.comparison.verdict == "ahead" and helps.changed == 40
    assert "the image helps" in helps.sentence() and "changed 40 of 80 choices" in helps.sentence()
    noise = image_effect(TASK, [1.0, 0.0] * 40, [0.0, 1.0] + [1.0, 0.0] * 39)
    assert noise.comparison.verdict == "not distinguishable" and "not distinguishable" in noise.sentence()


def test_babymerge_eval_scores_the_control_and_says_what_the_image_did(tmp_path, captions, make_checkpoint, cli):
    import json
    import re

    root, images = captions
    features = tmp_path / "features.safetensors"
    features_for(images, 1).save(features)
    out = tmp_path / "results"
    args = ["--tasks", TASK, "--features", features, "--data-dir", root, "--out", out, "--no-progress"]
    done = cli("eval", make_checkpoint(7), *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "it/s]" not in done.stderr and "Loading weights" not in done.stderr  # --no-progress: no bars at all
    assert f"| {TASK}_no_image | acc |" in done.stdout
    per_task = {}
    for task in (TASK, TASK + "_no_image"):
        [file] = [p for p in out.rglob(f"samples_{task}_*.jsonl") if re.match(rf"samples_{task}_\d{{4}}-", p.name)]
        rows = sorted((json.loads(line) for line in file.read_text().splitlines()), key=lambda r: r["doc_id"])
        per_task[task] = [r["acc"] for r in rows]
    changed = sum(a != b for a, b in zip(*per_task.values(), strict=True))
    [line] = [line for line in done.stdout.splitlines() if line.startswith(f"- {TASK}:")]
    assert f"changed {changed} of {len(images)} choices" in line or (changed == 0 and "changed none" in line)
