"""The shared starting point: a seeded random babyllava checkpoint saved with its tokenizer."""

from __future__ import annotations

import os

import torch
from transformers import PreTrainedTokenizerBase

from ..io import atomic_dir
from ..modeling import BabyLlavaForConditionalGeneration, make_config
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
