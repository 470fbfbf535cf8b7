"""Named sizes of babyllava: the paper's, a small one for CPU studies on real data, a tiny one for tests."""

from __future__ import annotations

from typing import Any

from ..errors import BadValueError
from .configuration_babyllava import BabyLlavaConfig

PRESETS: dict[str, dict[str, Any]] = {
    # The paper: 6-layer Llama-style LM, width 768, DINOv2-large features (1024-d).
    "paper": {
        "text": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 6, "num_attention_heads": 12},
        "vision_feature_dim": 1024,
    },
    # 2.1M parameters at vocabulary 4,000: the largest that trains a few million words in minutes on 2 CPU cores
    # (benchmarks/real_data_study.md); fed by the tiny random DINOv2's 32-d features.
    "small": {
        "text": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4},
        "vision_feature_dim": 32,
    },
    "tiny": {
        "text": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4},
        "vision_feature_dim": 32,
    },
}


def make_config(
    preset: str,
    *,
    vocab_size: int,
    image_token_index: int,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    max_position_embeddings: int = 512,
    **overrides: Any,
) -> BabyLlavaConfig:
    """Build a config from a preset; ``overrides`` set top-level fields such as ``num_image_tokens``."""
    if preset not in PRESETS:
        raise BadValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    spec = PRESETS[preset]
    text = {
        **spec["text"],
        "vocab_size": vocab_size,
        "max_position_embeddings": max_position_embeddings,
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
        "pad_token_id": pad_token_id,
    }
    fields = {"vision_feature_dim": spec["vision_feature_dim"], **overrides}
    try:
        return BabyLlavaConfig(
            text_config=text,
            image_token_index=image_token_index,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            **fields,
        )
    except ValueError as error:  # the config file is copied into checkpoints, so it raises plain ValueError
        raise BadValueError(f"preset {preset!r}: {error}") from None
