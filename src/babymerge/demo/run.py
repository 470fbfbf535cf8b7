"""``babymerge demo``: the whole job end to end on an embedded default, with no downloads.

world (or real data) -> tokenizer -> image features -> shared initial checkpoint -> text-only and multimodal
training from it -> in-memory merge sweep (best pair by the paper's rule, and checkpoint by checkpoint) ->
table and plots. Every step writes plain files under ``OUT`` and is skipped (or resumed) when they exist.
``seed_words`` adds a shared seed pre-training run that both runs continue from and the merges use as base;
``seeds`` repeats everything after the image features once per training seed (``seeds.py``).

Without a vision model to download, features come from a randomly initialised tiny DINOv2: image results
are then not meaningful, and every summary says so.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..config_file import load_config as load_config_file
from ..errors import BabymergeError
from ..features.store import RANDOM_BACKBONE_WARNING
from ..formats.captions import caption_images, read_captions, write_captions
from ..io import atomic_file
from ..sweep.config import DEFAULT_METHODS, SweepConfig
from .config import DemoConfig
from .world import QUICK, WorldSize, generate_world

WORLD_TITLES = {
    "babylm_blimp_fast": "Grammar pairs (world, BLiMP format)",
    "babylm_caption_matching_fast": "Caption matching (world)",
    "babylm_winoground": "Winoground-style (world)",
}
RANDOM_NOTE = f"NOTE: {RANDOM_BACKBONE_WARNING} (no pretrained weights offline)."


def load_config(path: str | Path, **overrides: Any) -> DemoConfig:
    """A :class:`DemoConfig` from a YAML file with ``overrides`` (non-None values) on top."""
    return load_config_file(DemoConfig, path, overrides)


def log(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Inputs(BaseModel):
    """Where the demo's text, captions, images and evaluation data are."""

    text: Path
    captions: Path
    images: Path
    evaluation_data: Path
    tasks: list[str]
    select_multimodal_by: str
    synthetic: bool


def world_inputs(config: DemoConfig) -> Inputs:
    folder = config.out / "world"
    if not (folder / "WORLD.md").is_file():
        size = QUICK.model_copy(update={"seed": config.seed}) if config.quick else WorldSize(seed=config.seed)
        generate_world(folder, size, overwrite=folder.exists())
        log(f"generated the synthetic world in {folder}: {(folder / 'WORLD.md').read_text().splitlines()[-1]}")
    tasks = config.tasks or ["babylm_blimp_fast", "babylm_caption_matching_fast", "babylm_winoground"]
    return Inputs(
        text=folder / "text",
        captions=folder / "captions.txt",
        images=folder / "images",
        evaluation_data=folder / "evaluation_data",
        tasks=tasks,
        select_multimodal_by="babylm_caption_matching_fast",
        synthetic=True,
    )


REAL_TASKS = ["babylm_blimp_fast", "babylm_caption_matching_fast"]
CAPTION_MATCHING = Path("extra_eval") / "caption_matching"


def real_inputs(config: DemoConfig) -> Inputs:
    """BabyLM-format text and Flickr8k-format captions, read in place. A tenth of the captioned images is held
    out for caption matching; ``OUT/data/evaluation_data`` links every entry of ``--data-dir`` and adds the
    held-out captions as ``extra_eval/caption_matching``."""
    captions_file = config.images_captions
    images = captions_file.parent / "images"
    for needed, what in (
        (config.train_text, "BabyLM-format text (.train files)"),
        (captions_file, "a Flickr8k-format captions.txt (image,caption)"),
        (images, f"the images/ folder beside {captions_file.name}"),
        (config.data_dir, "an evaluation_data folder (BabyLM layout: fast_eval/, full_eval/)"),
    ):
        if not needed.exists():
            raise BabymergeError(f"{needed}: not found (expected {what})")
    split = config.out / "data"
    train_captions = split / "train_captions.txt"
    evaluation = split / "evaluation_data"
    held_out = evaluation / CAPTION_MATCHING / "captions.txt"
    if not held_out.is_file():
        rows = read_captions(captions_file)
        names = caption_images(rows)
        test = set(names[-max(len(names) // 10, 2) :])
        write_captions(train_captions, [r for r in rows if r[0] not in test])
        write_captions(held_out, [r for r in rows if r[0] in test])
    for group in sorted(p for p in config.data_dir.resolve().iterdir() if p.is_dir()):
        for entry in sorted(group.iterdir()):
            link = evaluation / group.name / entry.name
            if Path(group.name) / entry.name != CAPTION_MATCHING and not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    return Inputs(
        text=config.train_text,
        captions=train_captions,
        images=images,
        evaluation_data=evaluation,
        tasks=config.tasks or REAL_TASKS,
        select_multimodal_by="babylm_caption_matching_fast",
        synthetic=False,
    )


def make_tokenizer(config: DemoConfig, inputs: Inputs) -> Path:
    from ..training.config import TokenizerConfig
    from ..training.tokenizer import run_tokenizer

    folder = config.out / "tokenizer"
    if not (folder / "tokenizer.json").is_file():
        vocab = config.vocab_size or (8000 if config.real else 1000)
        stage = TokenizerConfig(
            text=inputs.text, out=folder, vocab_size=vocab, overwrite=folder.exists(), progress=config.progress
        )
        log(run_tokenizer(stage))
    return folder


def make_features(config: DemoConfig, inputs: Inputs) -> Path:
    from ..features.config import FeaturesConfig
    from ..features.extract import run_features

    path = config.out / "features.safetensors"
    if not path.is_file():
        log("extracting image features with a RANDOMLY INITIALISED tiny DINOv2 (no pretrained weights offline)")
        stage = FeaturesConfig(
            images=inputs.images,
            out=path,
            random_backbone=True,
            seed=config.seed,
            device=config.device,
            progress=config.progress,
        )
        run_features(stage)
    return path


def make_init(config: DemoConfig, tokenizer_dir: Path, features: Path) -> Path:
    from ..training.config import InitConfig
    from ..training.init import run_init

    folder = config.out / "init"
    if not (folder / "config.json").is_file():
        stage = InitConfig(
            tokenizer=tokenizer_dir,
            out=folder,
            preset=config.preset,
            seed=config.seed,
            features=features,
            overwrite=folder.exists(),
        )
        log(run_init(stage))
    return folder


def count_words(files: list[Path], limit: int | None = None) -> int:
    words = 0
    for file in files:
        with open(file, encoding="utf-8") as handle:
            for line in handle:
                words += len(line.split())
                if limit and words >= limit:
                    return limit
    return words


def words_per_epoch(config: DemoConfig, inputs: Inputs) -> dict[str, float]:
    """Words one epoch of each run sees: the text (up to ``max_words``); the multimodal run's text and captions
    in ``text_ratio`` (all of both when null)."""
    from ..training.tokenizer import text_files

    text_words = count_words(text_files(inputs.text), config.max_words)
    caption_words = sum(len(caption.split()) for _, caption in read_captions(inputs.captions))
    ratio = config.text_ratio
    multimodal = text_words + caption_words if ratio is None else min(text_words / ratio, caption_words / (1 - ratio))
    return {"text": text_words, "multimodal": multimodal}


def milestone_unit(config: DemoConfig, inputs: Inputs, epochs: float) -> int:
    """The BabyLM schedule (1..10, 20, ... units) scaled so that both runs pass about 11 milestones (4 when
    quick)."""
    words = min(words_per_epoch(config, inputs).values()) * epochs
    return max(int(words / (4.5 if config.quick else 22)), 1)


def total_epochs(config: DemoConfig) -> float:
    return config.epochs or (1 if config.real else 4)


def checked_seed_words(config: DemoConfig, inputs: Inputs) -> dict[str, float]:
    """Words per epoch of each run, once ``seed_words`` is known to be below each run's total words."""
    per_epoch, epochs = words_per_epoch(config, inputs), total_epochs(config)
    for mode, words in per_epoch.items():
        if config.seed_words and config.seed_words >= epochs * words:
            raise BabymergeError(
                f"seed_words {config.seed_words:,}: must be below the {mode} run's {epochs * words:,.0f} words "
                f"({epochs:g} epochs of {words:,.0f})"
            )
    return per_epoch


def seed_pre_training(
    config: DemoConfig, inputs: Inputs, epochs: float, common: dict[str, Any], extra: dict[str, Any]
) -> dict[str, float]:
    """Train (or find) the ``seed_words`` run from the initialisation; return each run's epochs after it.

    The seed run's epochs are N / (words per epoch of ``seed_mode``), words as counted in the files; it sees a
    little more (S: whole steps, and the heads of cut sentences seen twice, about 14% more on BabyLM text). Each
    run then continues for ``epochs`` - S / (its own words per epoch x the seed run's ratio of words seen to
    words counted): its total words seen stays what it is without the arm (up to one optimizer step)."""
    from ..sweep.checkpoints import words_seen
    from ..training import TrainConfig, train

    per_epoch = checked_seed_words(config, inputs)
    final = config.out / "seed_run" / "checkpoints" / "final"
    if not (final / "config.json").is_file():
        mode, seed_epochs = config.seed_mode, config.seed_words / per_epoch[config.seed_mode]
        log(f"seed pre-training: the {mode} model for {config.seed_words:,} words ({seed_epochs:.3g} epochs)")
        mine = extra if mode == "multimodal" else {}
        train(TrainConfig(mode=mode, out=final.parent.parent, **{**common, "epochs": seed_epochs}, **mine))
    seen = words_seen(final) or config.seed_words
    done = json.loads((final / "babymerge_training.json").read_text()).get("epoch") if final.is_dir() else None
    # words seen per epoch exceed the counted words where blocks open at sentence starts (a cut sentence's head
    # is seen twice): measure that on the seed run, so that S and the continuation count in one unit
    seen_per_counted = seen / (done * per_epoch[config.seed_mode]) if done else 1.0
    return {mode: max(epochs - seen / (words * seen_per_counted), 1e-3) for mode, words in per_epoch.items()}


def base_checkpoint(config: DemoConfig, init: Path) -> Path:
    """The merges' task-vector base: the seed pre-training run's final checkpoint, else the initialisation."""
    return config.out / "seed_run" / "checkpoints" / "final" if config.seed_words else init


def train_both(config: DemoConfig, inputs: Inputs, init: Path, features: Path) -> tuple[Path, Path]:
    """The text-only and multimodal runs from ``init``, or from the seed pre-training run that ``seed_words``
    asks for (trained first, from ``init``)."""
    from ..training import TrainConfig, train

    epochs = total_epochs(config)
    unit = config.milestone_unit or milestone_unit(config, inputs, epochs)
    common: dict[str, Any] = {
        "init": init,
        "text": inputs.text,
        "seed": config.seed,
        "epochs": epochs,
        "max_length": config.max_length,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "milestone_unit": unit,
        "save_steps": 10_000,
        "logging_steps": 20,
        "text_max_words": config.max_words,
        "progress": config.progress,
        "device": config.device,
    }
    extra = {"captions": inputs.captions, "features": features, "text_ratio": config.text_ratio}
    extra["pack_captions"] = config.pack_captions  # off by default: the demo's figures use a caption a row
    per_run = {"text": epochs, "multimodal": epochs}
    if config.seed_words:
        per_run = seed_pre_training(config, inputs, epochs, common, extra)
        common["init"] = base_checkpoint(config, init)
    runs, todo = {}, []
    for mode in ("text", "multimodal"):
        out = config.out / f"{mode}_run"
        runs[mode] = out
        if (out / "checkpoints" / "final" / "config.json").is_file():
            continue
        mine = extra if mode == "multimodal" else {}
        todo.append(TrainConfig(mode=mode, out=out, **{**common, "epochs": per_run[mode]}, **mine))
    what = f"({epochs:g} epochs, a checkpoint every BabyLM milestone of {unit:,} words)"
    if config.seed_words:
        what = f"(the rest of {epochs:g} epochs after the seed run, a checkpoint every milestone of {unit:,} words)"
    if config.workers > 1 and len(todo) > 1:
        from .workers import train_side_by_side

        log(f"training the text-only and multimodal models side by side, one process each {what}")
        train_side_by_side([c.model_copy(update={"progress": False}) for c in todo], config.threads)
    else:
        for stage in todo:
            log(f"training the {stage.mode} model {what}")
            train(stage)
    return runs["text"], runs["multimodal"]


def sweep_configs(
    config: DemoConfig, inputs: Inputs, runs: tuple[Path, Path], base: Path, features: Path
) -> tuple[SweepConfig, SweepConfig]:
    """The demo's two sweeps: the selected (or final) pair over methods and alphas, then checkpoint by checkpoint."""
    text_run, multimodal_run = runs
    alphas = config.alphas or ([0.0, 0.5, 1.0] if config.quick else None)
    methods = ["linear", "ties"] if config.quick and config.methods == DEFAULT_METHODS else config.methods
    common: dict[str, Any] = {
        "text": text_run,
        "multimodal": multimodal_run,
        "base": base,
        "store": config.out / "sweep" / "results.jsonl",
        "data_dir": inputs.evaluation_data,
        "features": features,
        "select_multimodal_by": inputs.select_multimodal_by,
        "device": config.device,
        "limit": 24 if config.quick else None,
    }
    best = SweepConfig(
        **common,
        methods=methods,
        tasks=inputs.tasks,
        pairing=[config.pairing],
        **({"alphas": alphas} if alphas else {}),
    )
    along = SweepConfig(
        **common,
        methods=["linear"],
        tasks=inputs.tasks,
        pairing=["aligned"],
        alphas=config.aligned_alphas or ([0.0, 1.0] if config.quick else [0.0, 0.5, 1.0]),
    )
    return best, along


def write_seconds(config: DemoConfig, seconds: dict[str, float], start: float) -> None:
    """``OUT/stage_seconds.json`` with the total, and the log line."""
    seconds["total"] = round(time.perf_counter() - start, 1)
    with atomic_file(config.out / "stage_seconds.json") as tmp:
        tmp.write_text(json.dumps(seconds, indent=1) + "\n", encoding="utf-8")
    log("seconds per stage (0 = already done): " + ", ".join(f"{k} {v:g}" for k, v in seconds.items()))


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Run (or resume) the demo; returns the sweep outcome's table and files."""
    import torch

    from ..sweep.equal_words import markdown as equal_words_markdown
    from ..sweep.report import markdown_table, write_report
    from ..sweep.run import Sweep, pair_id
    from ..sweep.store import ResultStore

    start = time.perf_counter()
    if config.device == "cpu":
        torch.set_num_threads(config.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    config.out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    def timed(stage: str, step: Callable[..., Any], *args: Any) -> Any:
        began = time.perf_counter()
        result = step(*args)
        seconds[stage] = round(time.perf_counter() - began, 1)
        return result

    inputs = timed("data", real_inputs if config.real else world_inputs, config)
    if config.seed_words:
        checked_seed_words(config, inputs)  # before any training
    tokenizer = timed("tokenizer", make_tokenizer, config, inputs)
    features = timed("features", make_features, config, inputs)
    if config.seeds is not None:
        from .seeds import run_seeds

        outcome = run_seeds(config, inputs, tokenizer, features, timed)
        write_seconds(config, seconds, start)
        return outcome
    init = timed("init", make_init, config, tokenizer, features)
    text_run, multimodal_run = timed("training", train_both, config, inputs, init, features)

    base = base_checkpoint(config, init)
    best, along = sweep_configs(config, inputs, (text_run, multimodal_run), base, features)
    log(f"sweep 1: the {config.pairing} pair x {best.methods} x {len(best.alphas)} alphas x {best.tasks}")
    log("sweep 2: checkpoint by checkpoint along training (linear)")
    if config.workers > 1:
        from .workers import sweep_side_by_side

        log(f"both sweeps on {config.workers} processes sharing the points")
        sweep = timed("sweeps", sweep_side_by_side, (best, along), config.workers, config.threads, config.progress)
        best_pair = sweep.pairs()[0]
    else:
        sweep = Sweep(best, progress=config.progress)
        best_pair = timed("selection", lambda: sweep.pairs()[0])
        timed("sweep_best_pair", sweep.run)
        timed("sweep_aligned", Sweep(along, progress=config.progress, share_from=sweep).run)

    sweep_dir = config.out / "sweep"
    records = ResultStore(best.store).records(with_items=True)
    note = RANDOM_NOTE if sweep.random_backbone else ""
    titles = WORLD_TITLES if inputs.synthetic else None
    chosen = pair_id(best_pair)
    files = write_report(records, sweep_dir, "random vision backbone" if note else "", titles, selected=[chosen])
    table = markdown_table([r for r in records if r["pair"] == chosen and r.get("alpha") is not None], titles)
    write_seconds(config, seconds, start)
    remarks = [f"selection: {line}" for line in sweep.selection_remarks]
    return {
        "equal_words": equal_words_markdown(records, titles),
        "table": table,
        "files": files,
        "note": note,
        "pair": chosen,
        "synthetic": inputs.synthetic,
        "remarks": remarks,
    }
