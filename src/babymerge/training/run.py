"""``train(config)``: one text-only or multimodal run on the HF Trainer, with word milestones and resume."""

from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path

import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments, set_seed

from ..errors import BabymergeError
from ..io import atomic_file
from ..modeling import BabyLlavaForConditionalGeneration
from .config import TrainConfig
from .data import build_dataset
from .milestones import MilestoneCallback, WordCountingTrainer

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


RUN_LENGTH_FIELDS = {"epochs", "max_steps", "resume", "progress", "logging_steps", "save_steps", "save_total_limit"}


def warn_on_changes(before: TrainConfig, now: TrainConfig) -> None:
    """Resuming with other data or optimiser settings mixes two runs: say which fields changed."""
    old, new = before.model_dump(), now.model_dump()
    changed = sorted(k for k in new if k not in RUN_LENGTH_FIELDS and old.get(k) != new[k])
    if changed:
        logger.warning("resuming %s with changed settings %s; the checkpoints mix both", now.out, changed)


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
    state, ``OUT/loss.jsonl`` the logged losses and ``OUT/loss.png`` their curve. Running the same config
    again resumes from the last complete Trainer checkpoint (one cut mid-write by a kill is skipped).
    """
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed)
    model, tokenizer = load_init(config.init)
    black = model.model.black_image_features.detach().clone()
    dataset, collator = build_dataset(config, tokenizer, model.config.num_image_tokens, black)
    if config.lora:
        from .lora import apply_lora

        model = apply_lora(model, config)
    args = training_arguments(config)
    info = {"mode": config.mode, "seed": config.seed, "init": str(config.init.resolve()), "lora": config.lora}
    milestone = MilestoneCallback(out, config.milestone_unit, tokenizer, info=info)
    trainer = WordCountingTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[milestone, *(callbacks or [])],
    )
    milestone.trainer = trainer
    resume = None
    if config.resume and (out / "trainer").is_dir():
        resume = last_complete_checkpoint(out / "trainer")
    if resume is not None and (out / "train_config.yaml").is_file():
        before = yaml.safe_load((out / "train_config.yaml").read_text(encoding="utf-8"))
        warn_on_changes(TrainConfig.model_validate(before), config)
    if trainer.is_world_process_zero():
        with atomic_file(out / "train_config.yaml") as tmp:
            tmp.write_text(config.to_yaml())
        if resume is None:
            (out / "loss.jsonl").unlink(missing_ok=True)
    if resume is not None:
        milestone.restore(Path(resume), trim_log=trainer.is_world_process_zero())
    logger.info("training on %d rows (%d words per epoch)", len(dataset), dataset.num_words)
    trainer.train(resume_from_checkpoint=None if resume is None else str(resume))
    if config.save_final:
        milestone.save(out / "checkpoints" / "final", trainer.state, None)
    if trainer.is_world_process_zero() and (out / "loss.jsonl").is_file():
        from .loss_plot import plot_loss

        plot_loss([out], out / "loss.png")
    return out
