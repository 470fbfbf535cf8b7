"""``babymerge train``: train a text-only or multimodal babyllava model from an initial checkpoint."""

from __future__ import annotations

import argparse
import logging

FLAGS = {
    # flag: (config field, type, help)
    "--mode": ("mode", str, "text or multimodal"),
    "--init": ("init", str, "initial checkpoint folder (babymerge init)"),
    "--text": ("text", str, "BabyLM-format folder of .train files (or one file)"),
    "--captions": ("captions", str, "image-caption file (CSV image,caption or Flickr8k TSV)"),
    "--features": ("features", str, "feature file from `babymerge features`"),
    "--out": ("out", str, "output folder (checkpoints/, trainer/, loss.jsonl, loss.png)"),
    "--seed": ("seed", int, "random seed (default 0)"),
    "--max-length": ("max_length", int, "tokens per row (default 256)"),
    "--text-max-words": ("text_max_words", int, "use only this many words of text"),
    "--text-ratio": ("text_ratio", float, "multimodal: share of words from text-only rows (default 0.5)"),
    "--epochs": ("epochs", float, "epochs (default 10)"),
    "--max-steps": ("max_steps", int, "stop after this many steps"),
    "--batch-size": ("batch_size", int, "rows per device per step (default 32)"),
    "--gradient-accumulation-steps": ("gradient_accumulation_steps", int, "micro-batches per step"),
    "--learning-rate": ("learning_rate", float, "peak learning rate (default 5e-4)"),
    "--logging-steps": ("logging_steps", int, "log the loss every this many steps"),
    "--save-steps": ("save_steps", int, "resumable checkpoint every this many steps"),
    "--milestone-unit": ("milestone_unit", int, "words per milestone unit (default 1000000; 1000 gives 1k, 2k ...)"),
    "--cache-dir": ("cache_dir", str, "tokenisation cache folder"),
    "--lora-r": ("lora_r", int, "LoRA rank (default 8)"),
    "--lora-alpha": ("lora_alpha", int, "LoRA alpha (default 16)"),
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a text-only or multimodal model (HF Trainer)")
    parser.add_argument("--config", help="YAML file of TrainConfig fields; flags given here override it")
    for flag, (field, kind, text) in FLAGS.items():
        parser.add_argument(flag, dest=field, type=kind, default=None, help=text)
    parser.add_argument("--lora", action="store_true", default=None, help="train a LoRA adapter (peft)")
    parser.add_argument("--no-resume", dest="resume", action="store_false", default=None, help="start afresh")
    parser.add_argument("--quiet", dest="progress", action="store_false", default=None, help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.config import TrainConfig
    from ..training.run import train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    fields = [field for field, _, _ in FLAGS.values()] + ["lora", "resume", "progress"]
    given = {field: getattr(args, field) for field in fields if getattr(args, field) is not None}
    config = TrainConfig.from_yaml(args.config, **given) if args.config else TrainConfig.model_validate(given)
    out = train(config)
    print(out)
    return 0
