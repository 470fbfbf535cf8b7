"""Configuration of babyllava: a Llama-style language model fed by pre-extracted image features.

This file is copied into every saved checkpoint, so it imports only transformers.
"""

from __future__ import annotations

from typing import Literal

from transformers import LlamaConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

AUTO_MAP = {
    "AutoConfig": "configuration_babyllava.BabyLlavaConfig",
    "AutoModelForCausalLM": "modeling_babyllava.BabyLlavaForConditionalGeneration",
    "AutoModelForImageTextToText": "modeling_babyllava.BabyLlavaForConditionalGeneration",
}


class BabyLlavaConfig(PreTrainedConfig):
    """A LLaVA-1.5 style model whose vision encoder runs offline.

    ``image_features`` of shape ``(batch, num_image_tokens, vision_feature_dim)`` (or, for rows holding several
    images, ``(images, ...)`` in the order of their placeholders) go through a 2-layer MLP projector and replace
    the embeddings of the ``image_token_index`` placeholders in ``input_ids``.
    ``image_pooling`` records how the features were pooled from the backbone's patches: ``mean`` (one
    token, the paper's setting), ``grid`` (``image_grid_size`` squared tokens) or ``patches`` (all patches).
    The black image's features, used whenever no image is given, live in the weights as
    ``model.black_image_features``.
    """

    model_type = "babyllava"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=LlamaConfig)}

    text_config: dict | PreTrainedConfig | None = None
    vision_feature_dim: int = 1024
    projector_hidden_act: str = "gelu"
    image_token_index: int = 32000
    num_image_tokens: int = 1
    image_pooling: Literal["mean", "grid", "patches"] = "mean"
    image_grid_size: int | None = None
    vision_backbone: str | None = "facebook/dinov2-large"
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.image_pooling == "mean" and self.num_image_tokens != 1:
            raise ValueError(f"image_pooling 'mean' gives 1 image token, not num_image_tokens={self.num_image_tokens}")
        if self.image_pooling == "grid":
            if not self.image_grid_size or self.image_grid_size**2 != self.num_image_tokens:
                raise ValueError(
                    f"image_pooling 'grid' needs num_image_tokens == image_grid_size**2, "
                    f"got {self.num_image_tokens} and {self.image_grid_size}"
                )
        if not 0 <= self.image_token_index < self.text_config.vocab_size:
            raise ValueError(
                f"image_token_index {self.image_token_index} is outside the vocabulary "
                f"(text_config.vocab_size={self.text_config.vocab_size})"
            )
        self.auto_map = {**AUTO_MAP, **(getattr(self, "auto_map", None) or {})}


__all__ = ["BabyLlavaConfig"]
