"""A stored result is keyed by the data THAT TASK reads (not the whole data dir), and a recompute says which input
changed; the selection rule's image task without a feature file is refused before anything is scored."""

from __future__ import annotations

import json
import logging
import random

from helpers import WORDS, series

from babymerge.cli import main
from babymerge.sweep.merge import MULTIMODAL, TEXT
from babymerge.sweep.run import Sweep, SweepConfig

TASKS = ["babylm_blimp_fast", "babylm_blimp_supplement_fast"]


def pairs(folder, seed: int, n: int = 3) -> None:
    rng = random.Random(seed)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(4)).capitalize() + "."

    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"sentence_good": sentence(), "sentence_bad": sentence(), "UID": folder.name} for _ in range(n)]
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def scored(config: SweepConfig) -> tuple[Sweep, list[str]]:
    """Run the sweep with lm-eval's scorer; return it and the tasks it scored."""
    sweep = Sweep(config, progress=False)
    calls: list[str] = []
    score = sweep.scorer.score
    sweep.scorer.score = lambda task: calls.append(task) or score(task)
    sweep.run()
    return sweep, calls


def test_results_are_keyed_by_the_data_each_task_reads(models, tmp_path, caplog):
    data = tmp_path / "data"
    pairs(data / "fast_eval" / "blimp_fast", 1)
    pairs(data / "fast_eval" / "supplement_fast", 2)
    config = SweepConfig(
        text=models[TEXT],
        multimodal=models[MULTIMODAL],
        methods=["linear"],
        alphas=[0.5],
        tasks=TASKS,
        pairing=["final"],
        store=tmp_path / "results.jsonl",
        data_dir=data,
    )
    first, calls = scored(config)
    assert calls == TASKS
    places = {r["task"]: set(r["input_fields"]["data"]) for r in first.store.records()}
    assert places == {TASKS[0]: {"fast_eval/blimp_fast"}, TASKS[1]: {"fast_eval/supplement_fast"}}

    pairs(data / "full_eval" / "blimp_filtered", 3)  # another data set, linked in later: no task here reads it
    (data / "README.txt").write_text("notes\n")
    again, calls = scored(config)
    assert calls == [] and again.recomputed == 0

    pairs(data / "fast_eval" / "supplement_fast", 4)  # a file the supplement reads
    with caplog.at_level(logging.WARNING, logger="babymerge.sweep"):
        changed, calls = scored(config)
    assert calls == [TASKS[1]] and changed.recomputed == 1
    assert "recomputing 1 results stored for other inputs: data fast_eval/supplement_fast changed (1)" in caplog.text


def test_selection_by_winoground_without_features_fails_before_scoring(models, world, tmp_path, capsys):
    """The default ``--pairing best`` picks the multimodal checkpoint by Winoground: without a feature file it
    stops at once, in one line naming Winoground, how to make the file and ``--select-multimodal-by``."""
    texts = series(tmp_path / "text", models[TEXT], [("1M", 1_000_000), ("2M", 2_000_000)])
    mms = series(tmp_path / "mm", models[MULTIMODAL], [("1M", 1_000_000), ("2M", 2_000_000)])
    argv = ["sweep", "--text", str(texts), "--multimodal", str(mms), "--methods", "linear", "--alphas", "0.5"]
    argv += ["--data-dir", str(world / "evaluation_data"), "--out", str(tmp_path / "out"), "--no-progress"]
    for extra, missing in (((), "no --features given"), (("--features", "none.safetensors"), "none.safetensors")):
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        for part in ("Winoground", missing, "babymerge features WINOGROUND_IMAGES", "--select-multimodal-by"):
            assert part in err[0], (part, err[0])
        assert not (tmp_path / "out" / "results.jsonl").exists()  # no checkpoint was scored


def test_a_misspelt_task_is_refused_before_any_model_loads(models, world, tmp_path, capsys, monkeypatch):
    """``--tasks`` and ``--select-*-by`` typos: one line with a did-you-mean, before a checkpoint is loaded."""
    import pytest

    from babymerge.sweep import run

    monkeypatch.setattr(run.ModelSlot, "__init__", lambda *args, **kwargs: pytest.fail("a model was loaded"))
    argv = ["sweep", "--text", str(models[TEXT]), "--multimodal", str(models[MULTIMODAL]), "--pairing", "final"]
    argv += ["--methods", "linear", "--alphas", "0.5", "--data-dir", str(world / "evaluation_data")]
    argv += ["--out", str(tmp_path / "out"), "--no-progress"]
    for extra, typo in (
        (["--tasks", "babylm_blimp_fastt"], "babylm_blimp_fastt"),
        (["--tasks", "babylm_blimp_fast", "--select-text-by", "babylm_blimp_fsat"], "babylm_blimp_fsat"),
    ):
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and typo in err[0] and "did you mean 'babylm_blimp_fast'" in err[0], err


def test_no_progress_leaves_no_bar(models, world, tmp_path, capfd):
    argv = ["sweep", "--text", str(models[TEXT]), "--multimodal", str(models[MULTIMODAL]), "--pairing", "final"]
    argv += ["--methods", "linear", "--alphas", "0.5", "--tasks", "babylm_blimp_fast", "--limit", "4"]
    argv += ["--data-dir", str(world / "evaluation_data"), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(argv) == 0
    err = capfd.readouterr().err
    assert "it/s]" not in err and "Loading weights" not in err and "Running loglikelihood" not in err, err[-2000:]
