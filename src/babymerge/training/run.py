"""``train(config)``: one text-only or multimodal run on the HF Trainer, with word milestones and resume."""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments, set_seed
from transformers.utils import logging as hf_logging

from ..config_file import is_path_field, load_config
from ..errors import BabymergeError
from ..io import atomic_file
from ..modeling import BabyLlavaForConditionalGeneration
from .config import TrainConfig
from .data import build_dataset
from .milestones import META_FILE, MilestoneCallback, WordCountingTrainer, init_words_seen
from .throughput import ThroughputCallback, flops_per_token

logger = logging.getLogger(__name__)


def load_init(init: Path):
    """The initial model and tokenizer of a run."""
    import babymerge.modeling  # noqa: F401  (registers babyllava)

    if not (init / "config.json").is_file():
        raise BabymergeError(f"{init}: not a checkpoint folder (no config.json); make one with `babymerge init`")
    model = AutoModelForCausalLM.from_pretrained(init.resolve())
    if not isinstance(model, BabyLlavaForConditionalGeneration):
        raise BabymergeError(f"{init}: holds a {type(model).__name__}, expected a babyllava checkpoint")
    return model, AutoTokenizer.from_pretrained(init)


def precision(config: TrainConfig) -> str:
    """``bf16``, ``fp16`` or ``fp32``: the run's ``trainer_args``, else ``accelerate launch --mixed_precision``."""
    for name in ("bf16", "fp16"):
        if config.trainer_args.get(name):
            return name
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    return launched if launched in ("bf16", "fp16") else "fp32"


def attention(config: TrainConfig) -> str:
    """The attention implementation the run uses: ``attn_implementation``, with ``auto`` resolved to
    flash_attention_2 on a GPU where flash-attn is installed and the run is in bf16 or fp16, else sdpa. A choice
    that cannot train on the device or in the run's precision is refused in one line."""
    from transformers.utils import is_flash_attn_2_available, is_flash_attn_3_available

    name, gpu = config.attn_implementation, config.device != "cpu" and torch.cuda.is_available()
    half = precision(config) != "fp32"
    if name == "auto":
        return "flash_attention_2" if gpu and half and is_flash_attn_2_available() else "sdpa"
    flash = {"flash_attention_2": is_flash_attn_2_available, "flash_attention_3": is_flash_attn_3_available}
    if name == "flex_attention" and not gpu:
        problem = "torch has no flex-attention backward on CPU"
    elif name in flash and not (gpu and flash[name]()):
        problem = f"needs a GPU and the flash-attn package{' 3' if name.endswith('3') else ''}"
    elif name in flash and not half:
        problem = "trains in bf16 or fp16 only (trainer_args bf16: true, or accelerate --mixed_precision bf16)"
    else:
        return name
    raise BabymergeError(f"attn_implementation {name!r}: {problem} (device {config.device}); use sdpa or auto")


def device_defaults(device: str) -> dict:
    """``device`` cpu: the Trainer's ``use_cpu`` (torchrun on CPUs too); otherwise its own choice, pinned memory."""
    if device == "cpu":
        return {"dataloader_pin_memory": False, "use_cpu": True}
    return {"dataloader_pin_memory": torch.cuda.is_available()}


def training_arguments(config: TrainConfig) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(config.out / "trainer"),
        seed=config.seed,
        data_seed=config.seed,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type=config.lr_scheduler_type,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=not config.progress,
        **{**device_defaults(config.device), **config.trainer_args},
    )


def speed(config: TrainConfig, args: TrainingArguments, kernel: str) -> dict:
    """The settings that set a run's speed, as it ran (``OUT/throughput.json``); ``kernel``: the attention's."""
    return {
        "attn_implementation": kernel,
        "precision": precision(config),
        "optim": str(getattr(args.optim, "value", args.optim)),
        "torch_compile": args.torch_compile,
        "batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "pack_captions": config.pack_captions if config.mode == "multimodal" else None,
    }


CONFIG_FILE = "train_config.yaml"
RESUME_LOG = "resume_log.jsonl"
# Fields that may change between a run and its resume: they do not change what is trained.
FREE_FIELDS = {
    *("out", "progress", "logging_steps", "save_steps", "save_total_limit", "save_final", "cache_dir", "device"),
    *("resume", "restart", "allow_changes", "allow_feature_mismatch", "attn_implementation"),
}


def changed_settings(out: Path, now: TrainConfig) -> dict[str, list]:
    """``{field: [old, new]}`` for every setting of ``now`` that differs from the run in ``out`` (its
    ``train_config.yaml``), paths compared resolved, :data:`FREE_FIELDS` left out. A relative path (files
    written before paths were saved absolute) also matches when read against the working folder. A multimodal
    run whose file predates ``pack_captions`` trained one caption a row (``pack_captions: false``)."""
    file = out / CONFIG_FILE
    before = load_config(TrainConfig, file).resolved().model_dump(mode="json")
    raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    after = now.resolved().model_dump(mode="json")
    if before["mode"] == "text":
        before["pack_captions"] = after["pack_captions"]  # text runs have no captions to pack
    elif "pack_captions" not in raw:
        before["pack_captions"] = False  # written before packing existed: one caption a row
    as_written = {k: str(Path(v).expanduser().resolve()) for k, v in raw.items() if k in after and isinstance(v, str)}
    return {
        k: [raw[k] if k in as_written and is_path(k) else before[k], after[k]]
        for k in after
        if k not in FREE_FIELDS and before[k] != after[k] and not (is_path(k) and as_written.get(k) == after[k])
    }


def is_path(field: str) -> bool:
    return is_path_field(TrainConfig.model_fields[field].annotation)


def refuse_changes(out: Path, changed: dict[str, list]) -> None:
    listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
    raise BabymergeError(
        f"{out}: the run there was trained with other settings ({listed}); rerun with its settings "
        f"({out / CONFIG_FILE}), --restart to start afresh, or --allow-changes to continue it anyway"
    )


def complete(out: Path, checkpoint: Path, config: TrainConfig) -> str | None:
    """``step N of N`` when the run in ``out`` trained all its steps (``checkpoint`` is its last Trainer
    checkpoint) and wrote ``checkpoints/final`` if ``config`` asks for it; ``None`` otherwise."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    done = state["global_step"] >= state.get("max_steps", float("inf"))
    if done and (not config.save_final or (out / "checkpoints" / "final" / META_FILE).is_file()):
        return f"step {state['global_step']} of {state['max_steps']}"
    return None


def move_aside(out: Path) -> Path:
    """Rename ``out`` to the first free ``OUT.old-N`` beside it (``--restart``: nothing is deleted)."""
    n = 1
    while (aside := out.with_name(f"{out.name}.old-{n}")).exists():
        n += 1
    out.rename(aside)
    logger.warning("--restart: moved the earlier run %s to %s", out, aside)
    return aside


def remove_empty_folders(root: Path) -> None:
    """Remove ``root`` and the folders below it that hold no file (those a run made before it failed)."""
    for folder, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        try:
            os.rmdir(folder)
        except OSError:
            pass


def check_features(config: TrainConfig, model_config) -> None:
    """Refuse a feature file made with another backbone or pooling than the init (``allow_feature_mismatch``
    lets it through with a warning)."""
    from ..features.store import mismatch, read_metadata

    if config.features is None or (problem := mismatch(read_metadata(config.features), model_config)) is None:
        return
    if not config.allow_feature_mismatch:
        raise BabymergeError(
            f"{config.features}: {problem} ({config.init}); use the feature file the init was made with, "
            "or --allow-feature-mismatch"
        )
    logger.warning("%s: %s (%s); training anyway (allow_feature_mismatch)", config.features, problem, config.init)


def incomplete(checkpoint: Path) -> str | None:
    """Why a Trainer ``checkpoint-N`` folder cannot be resumed from (cut mid-write), or ``None`` when complete.

    The Trainer writes the weights, then the optimizer, scheduler and RNG states, then ``trainer_state.json``.
    """
    from ..formats.checkpoint import read_safetensors_header, weight_files

    state = checkpoint / "trainer_state.json"
    try:
        int(json.loads(state.read_text())["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"{state.name} missing or truncated"
    try:
        weights = weight_files(checkpoint)
    except BabymergeError:
        return "shard index unreadable"
    if not weights:
        return "no weights"
    for file in weights:
        try:
            read_safetensors_header(file)
        except BabymergeError:
            return f"{file.name} truncated"
    for file in sorted([*checkpoint.glob("*.pt"), *checkpoint.glob("*.pth")]):
        if not zipfile.is_zipfile(file):  # torch.save writes zip archives; a cut one has no central directory
            return f"{file.name} truncated"
    return None


def last_complete_checkpoint(trainer_dir: Path) -> Path | None:
    """The highest-numbered complete ``checkpoint-N``; incomplete ones are skipped with a one-line notice."""
    found = [p for p in trainer_dir.glob("checkpoint-*") if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)]
    for checkpoint in sorted(found, key=lambda p: int(p.name.split("-")[1]), reverse=True):
        problem = incomplete(checkpoint)
        if problem is None:
            return checkpoint
        logger.warning("%s: skipped, cut mid-write (%s); resuming from an earlier checkpoint", checkpoint, problem)
    return None


def train(config: TrainConfig, *, callbacks: list | None = None) -> Path:
    """Train as ``config`` says; returns the output folder.

    ``OUT/checkpoints/<words>`` holds a complete model at each word milestone (an adapter folder with
    ``lora``), ``OUT/checkpoints/final`` the end state, ``OUT/trainer/checkpoint-N`` the Trainer's resumable
    state, ``OUT/loss.jsonl`` the logged losses, ``OUT/loss.png`` their curve and ``OUT/throughput.json`` this
    session's words/s, tokens/s, padding fraction and achieved TFLOP/s. Running the same config
    again resumes from the last complete Trainer checkpoint (one cut mid-write by a kill is skipped), or does
    nothing when the run is complete; other settings are refused before any work unless ``allow_changes``
    (recorded in ``OUT/resume_log.jsonl``) or ``restart`` (the earlier run is moved aside) is set.
    """
    out = config.out
    attention(config)  # an attention kernel the run cannot use is refused before anything moves
    restart = config.restart or not config.resume
    if restart and os.environ.get("RANK", "0") == "0" and out.is_dir() and any(out.iterdir()):
        move_aside(out)
    resume = None if restart or not (out / "trainer").is_dir() else last_complete_checkpoint(out / "trainer")
    changed: dict[str, list] = {}
    if resume is not None and (out / CONFIG_FILE).is_file():
        changed = changed_settings(out, config)
        if changed and not config.allow_changes:
            refuse_changes(out, changed)
        if not changed and (done := complete(out, resume, config)):
            logger.info("%s: already complete (%s); nothing to do (--restart trains it again)", out, done)
            return out
    created = next((p for p in [*reversed(out.absolute().parents), out.absolute()] if not p.exists()), None)
    bars = hf_logging.is_progress_bar_enabled()
    if not config.progress:
        hf_logging.disable_progress_bar()  # transformers' own "Loading weights" / "Writing model shards" bars
    try:
        return run_training(config, resume, changed, callbacks or [])
    except BaseException:
        if created is not None and created.is_dir():
            remove_empty_folders(created)
        raise
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def run_training(config: TrainConfig, resume: Path | None, changed: dict[str, list], callbacks: list) -> Path:
    """The run itself (see :func:`train`), from ``resume`` when given; ``changed`` settings are logged."""
    out = config.out
    set_seed(config.seed)
    model, tokenizer = load_init(config.init)
    kernel = attention(config)
    model.set_attn_implementation(kernel)
    start_words = 0 if config.reset_words else init_words_seen(config.init)
    check_features(config, model.config)
    black = model.model.black_image_features.detach().clone()
    dataset, collator = build_dataset(config, tokenizer, model.config.num_image_tokens, black)
    if config.lora:
        from .lora import apply_lora

        model = apply_lora(model, config)
    args = training_arguments(config)
    info = {"mode": config.mode, "seed": config.seed, "init": str(config.init.resolve()), "lora": config.lora}
    milestone = MilestoneCallback(out, config.milestone_unit, tokenizer, info=info, init_words=start_words)
    throughput = ThroughputCallback(
        out, flops_per_token(model, config.max_length)["total"], settings=speed(config, args, kernel)
    )
    trainer = WordCountingTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[milestone, throughput, *callbacks],
    )
    milestone.trainer = throughput.trainer = trainer
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        with atomic_file(out / CONFIG_FILE) as tmp:
            tmp.write_text(config.to_yaml())
        if changed:
            logger.warning("%s: resuming with changed settings %s (allow_changes)", out, changed)
            entry = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "from": str(resume)}
            with open(out / RESUME_LOG, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({**entry, "changed": changed}) + "\n")
        if resume is None:
            (out / "loss.jsonl").unlink(missing_ok=True)
    if resume is not None:
        milestone.restore(Path(resume), trim_log=trainer.is_world_process_zero())
    logger.info("training on %d rows (%d words per epoch)", len(dataset), dataset.num_words)
    if resume is None and start_words:
        logger.info("words seen count on from %d, the words seen of %s", start_words, config.init)
    trainer.train(resume_from_checkpoint=None if resume is None else str(resume))
    if config.save_final:
        milestone.save(out / "checkpoints" / "final", trainer.state, None)
    if trainer.is_world_process_zero() and (out / "loss.jsonl").is_file():
        from .loss_plot import plot_loss

        plot_loss([out], out / "loss.png")
    return out
