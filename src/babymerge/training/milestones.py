"""BabyLM word milestones: when to write a checkpoint, what to call it, and the callback that does it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ExportableState

from ..errors import BabymergeError
from ..io import atomic_dir
from .tokenizer import set_image_template

logger = logging.getLogger(__name__)

# BabyLM 2025: every 1M words up to 10M, every 10M up to 100M, every 100M up to 1B.
BABYLM_UNITS = [*range(1, 11), *range(20, 101, 10), *range(200, 1001, 100)]
META_FILE = "babymerge_training.json"


def milestones(unit: int = 1_000_000) -> list[int]:
    """Word counts at which a checkpoint is written; ``unit`` scales the BabyLM schedule down for small runs."""
    return [n * unit for n in BABYLM_UNITS]


def milestone_name(words: int) -> str:
    """``1M``, ``20M``, ``5k`` or the plain number: the folder name of a milestone."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if words >= size and words % size == 0:
            return f"{words // size}{suffix}"
    return str(words)


def init_words_seen(init: Path) -> int:
    """Words seen by the checkpoint a run starts from: its ``babymerge_training.json`` (written by ``babymerge
    train``), 0 for a folder without one (``babymerge init``)."""
    meta = Path(init) / META_FILE
    if not meta.is_file():
        return 0
    try:
        words = json.loads(meta.read_text()).get("words_seen")
    except (OSError, ValueError, AttributeError):
        words = None
    if type(words) is not int or words < 0:
        raise BabymergeError(
            f"{meta}: words_seen: expected a whole number of words >= 0, found {words!r}; "
            "fix the file, or --reset-words to count from 0"
        )
    return words


def write_checkpoint(model, tokenizer, path: Path, meta: dict, state_dict: dict | None = None) -> None:
    """A complete folder (weights or adapter, config, modeling code, tokenizer, ``babymerge_training.json``),
    written atomically; an existing folder of the same name is replaced."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    set_image_template(tokenizer, base.config.num_image_tokens)
    with atomic_dir(path, overwrite=True) as tmp:
        model.save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


class WordCountingTrainer(Trainer):
    """A Trainer that counts the source words of every batch it trains on (the ``num_words`` column), and for
    :meth:`pop_totals` the words, tokens without padding (``num_tokens``) and batch slots of the whole session."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._words = torch.zeros((), dtype=torch.long)
        self._totals = torch.zeros(3, dtype=torch.long)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        words = inputs.pop("num_words")
        tokens = inputs.pop("num_tokens", None)
        self._words = self._words.to(words.device) + words.sum()
        slots = words.new_tensor(inputs["input_ids"].numel())
        counts = torch.stack([words.sum(), slots if tokens is None else tokens.sum(), slots])
        self._totals = self._totals.to(words.device) + counts
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def pop_words(self) -> int:
        """Words trained on since the last call, summed over all processes."""
        words = self._words.to(self.args.device)
        if self.accelerator.num_processes > 1:
            words = self.accelerator.reduce(words, reduction="sum")
        self._words = torch.zeros((), dtype=torch.long)
        return int(words)

    def pop_totals(self) -> dict[str, int]:
        """Words, tokens (padding left out) and batch slots trained on since the last call, over all processes."""
        totals = self._totals.to(self.args.device)
        if self.accelerator.num_processes > 1:
            totals = self.accelerator.reduce(totals, reduction="sum")
        self._totals = torch.zeros(3, dtype=torch.long)
        return dict(zip(("words", "tokens", "slots"), map(int, totals.tolist()), strict=True))

    def full_state_dict(self) -> dict | None:
        """The gathered weights when they are sharded (FSDP, DeepSpeed), else None (the model has them)."""
        if self.is_fsdp_enabled or self.is_deepspeed_enabled:
            return self.accelerator.get_state_dict(self.model)
        return None


class MilestoneCallback(TrainerCallback, ExportableState):
    """Counts words seen from ``init_words_seen`` on (the init checkpoint's own count), writes
    ``checkpoints/<name>`` at each milestone above it (and a Trainer checkpoint with it), and appends every
    logged loss to ``loss.jsonl``."""

    def __init__(
        self, out: Path | None = None, unit: int = 1_000_000, tokenizer=None, trainer=None, info=None, init_words=0
    ):
        self.out, self.unit, self.tokenizer, self.trainer = out, unit, tokenizer, trainer
        self.info = info or {}
        self.init_words_seen = self.words_seen = init_words

    def state(self) -> dict:
        attributes = {"words_seen": self.words_seen, "init_words_seen": self.init_words_seen}
        return {"args": {"unit": self.unit}, "attributes": attributes}

    def restore(self, checkpoint: Path, *, trim_log: bool = True) -> None:
        """Take words seen (and the count the run started from: 0 in checkpoints that predate it) from a Trainer
        checkpoint and (``trim_log``) drop loss-log lines written after it."""
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
        saved = state.get("stateful_callbacks", {}).get(type(self).__name__, {}).get("attributes", {})
        self.words_seen = int(saved.get("words_seen", 0))
        self.init_words_seen = int(saved.get("init_words_seen", 0))
        log = self.out / "loss.jsonl"
        if trim_log and log.is_file():
            lines = [line for line in log.read_text().splitlines() if json.loads(line)["step"] <= state["global_step"]]
            log.write_text("".join(line + "\n" for line in lines))
        logger.info("resuming at step %d, %d words seen", state["global_step"], self.words_seen)

    def next_milestone(self) -> int | None:
        return next((m for m in milestones(self.unit) if m > self.words_seen), None)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        before = self.next_milestone()
        self.words_seen += self.trainer.pop_words()
        if before is not None and self.words_seen >= before:
            crossed = [m for m in milestones(self.unit) if before <= m <= self.words_seen]
            reached = crossed[-1]
            if len(crossed) > 1:
                skipped = ", ".join(milestone_name(m) for m in crossed[:-1])
                logger.warning("one step also crossed %s; only %s is written", skipped, milestone_name(reached))
            self.save(self.out / "checkpoints" / milestone_name(reached), state, reached)
            control.should_save = True
        return control

    def save(self, path: Path, state, milestone: int | None) -> None:
        state_dict = self.trainer.full_state_dict()
        if state.is_world_process_zero:
            meta = {"words_seen": self.words_seen, "init_words_seen": self.init_words_seen, "milestone": milestone}
            meta |= {"global_step": state.global_step}
            meta |= {"epoch": state.epoch, **self.info}
            model = self.trainer.accelerator.unwrap_model(self.trainer.model)
            write_checkpoint(model, self.tokenizer, path, meta, state_dict)
            logger.info("wrote %s (%d words seen)", path, self.words_seen)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs and "loss" in logs:
            row = {"step": state.global_step, "epoch": state.epoch, "words_seen": self.words_seen}
            row |= {key: logs[key] for key in ("loss", "learning_rate", "grad_norm") if key in logs}
            with open(self.out / "loss.jsonl", "a") as handle:
                handle.write(json.dumps(row) + "\n")
