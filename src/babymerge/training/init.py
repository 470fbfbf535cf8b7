"""The shared starting point: a seeded random babyllava checkpoint saved with its tokenizer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from ..errors import BabymergeError
from ..io import atomic_dir
from ..modeling import BabyLlavaForConditionalGeneration, make_config
from .config import InitConfig
from .tokenizer import IMAGE, set_image_template


def init_model(
    tokenizer: PreTrainedTokenizerBase,
    preset: str = "tiny",
    *,
    seed: int = 0,
    black_features: torch.Tensor | None = None,
    **config_overrides,
) -> BabyLlavaForConditionalGeneration:
    """A randomly initialised model whose vocabulary and special ids match ``tokenizer``.

    ``black_features`` (``(num_image_tokens, vision_feature_dim)``) are the black image's features; the
    feature dimension and token count are taken from them when given.
    """
    if black_features is not None:
        black_features = black_features.reshape(-1, black_features.shape[-1]).float()
        config_overrides.setdefault("vision_feature_dim", black_features.shape[-1])
        config_overrides.setdefault("num_image_tokens", black_features.shape[0])
    config = make_config(
        preset,
        vocab_size=len(tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **config_overrides,
    )
    torch.manual_seed(seed)
    model = BabyLlavaForConditionalGeneration(config)
    if black_features is not None:
        model.model.black_image_features.copy_(black_features)
    return model


def save_checkpoint(
    model: BabyLlavaForConditionalGeneration,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
) -> None:
    """Write weights, config, modeling code and tokenizer to ``out_dir`` atomically."""
    set_image_template(tokenizer, model.config.num_image_tokens)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def load_tokenizer(folder: str | os.PathLike) -> PreTrainedTokenizerBase:
    """The tokenizer folder written by ``babymerge tokenizer``; it must know the ``<image>`` token."""
    from transformers import AutoTokenizer

    if not (Path(folder) / "tokenizer.json").is_file():
        raise BabymergeError(f"{folder}: no tokenizer.json (make one with `babymerge tokenizer`)")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if IMAGE not in tokenizer.get_vocab():
        raise BabymergeError(f"{folder}: the tokenizer has no {IMAGE} token")
    return tokenizer


def run_init(config: InitConfig) -> str:
    """The init stage (``babymerge init``, the demo): a seeded model sized by the tokenizer and the feature file
    (black image, feature dim, image tokens, pooling), saved with its tokenizer; returns the one-line summary.
    A random-backbone feature file and a tokenizer template that the features overrule are noted on stderr."""
    from ..features.model_fields import model_fields
    from ..features.store import RANDOM_BACKBONE_WARNING, FeatureFile

    tokenizer = load_tokenizer(config.tokenizer)
    fields = {}
    if config.features:
        features = FeatureFile.load(config.features)
        fields = model_fields(features, config.features)
        if features.random_backbone:
            print(f"warning: {config.features}: {RANDOM_BACKBONE_WARNING}", file=sys.stderr)
    model = init_model(tokenizer, config.preset, seed=config.seed, **fields)
    template = tokenizer("", add_special_tokens=True)["input_ids"].count(model.config.image_token_index)
    if template != model.config.num_image_tokens:
        print(
            f"note: {config.tokenizer} puts {template} <image> token(s) after <s>; the checkpoint's tokenizer is "
            f"set to {model.config.num_image_tokens} to match the features",
            file=sys.stderr,
        )
    save_checkpoint(model, tokenizer, config.out, overwrite=config.overwrite)
    settings = model.config
    black = f"from {config.features}" if config.features else "zeros (no --features)"
    return (
        f"wrote {config.out}: preset {config.preset}, seed {config.seed}, {model.num_parameters():,} parameters, "
        f"{settings.num_image_tokens} image token(s) of {settings.vision_feature_dim} dims "
        f"({settings.image_pooling}), black image {black}"
    )
