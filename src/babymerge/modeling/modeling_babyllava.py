"""babyllava: a Llama language model with a 2-layer MLP projector for pre-extracted image features.

Weight names follow transformers' Llava layout (``model.language_model.*``, ``model.multi_modal_projector.*``,
``lm_head.*``), plus the buffer ``model.black_image_features``. This file is copied into every saved
checkpoint, so it imports only torch and transformers.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_babyllava import BabyLlavaConfig


class BabyLlavaProjector(nn.Module):
    """Maps image features to the language model's width: linear, activation, linear."""

    def __init__(self, config: BabyLlavaConfig):
        super().__init__()
        width = config.text_config.hidden_size
        self.linear_1 = nn.Linear(config.vision_feature_dim, width)
        self.act = ACT2FN[config.projector_hidden_act]
        self.linear_2 = nn.Linear(width, width)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(image_features)))


class BabyLlavaPreTrainedModel(PreTrainedModel):
    config_class = BabyLlavaConfig
    config: BabyLlavaConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaDecoderLayer"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True


class BabyLlavaModel(BabyLlavaPreTrainedModel):
    """The language model, the projector and the black image's features, without the LM head."""

    def __init__(self, config: BabyLlavaConfig):
        super().__init__(config)
        self.multi_modal_projector = BabyLlavaProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.register_buffer(
            "black_image_features", torch.zeros(config.num_image_tokens, config.vision_feature_dim), persistent=True
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def check_image_features(self, image_features: torch.Tensor | None, counts: torch.Tensor) -> torch.Tensor:
        """``(num_images, num_image_tokens, vision_feature_dim)`` features for the ``<image>`` tokens of each row
        (``counts``), the black image's when None. Given per row (``(batch, n, dim)``, rows without image tokens
        skipped) or flat (one image per run of ``n`` image tokens, in order: several images in a packed row)."""
        n, dim = self.config.num_image_tokens, self.config.vision_feature_dim
        total = int(counts.sum())
        if bool((counts % n).any()):  # every row holds whole images (a packed row several)
            raise ValueError(
                f"input_ids holds {total} image tokens (id {self.config.image_token_index}) per row "
                f"{counts.tolist()}; expected a multiple of {n} (num_image_tokens) in each row"
            )
        if image_features is None:
            return self.black_image_features.unsqueeze(0).expand(total // n, n, dim)
        if image_features.dim() == 2 and n == 1:
            image_features = image_features.unsqueeze(1)
        if image_features.dim() != 3 or tuple(image_features.shape[1:]) != (n, dim):
            raise ValueError(
                f"image_features has shape {tuple(image_features.shape)}; expected (images, {n}, {dim}) "
                f"(num_image_tokens, vision_feature_dim of this model)"
            )
        per_row = image_features.shape[0] == len(counts) and bool(((counts == 0) | (counts == n)).all())
        if per_row:
            image_features = image_features[counts > 0]
        if image_features.shape[0] != total // n:
            raise ValueError(
                f"image_features has {image_features.shape[0]} images but input_ids holds {total // n} "
                f"(rows {len(counts)}, image tokens per row {counts.tolist()})"
            )
        return image_features

    def get_image_features(self, image_features: torch.Tensor | None, counts: torch.Tensor) -> torch.Tensor:
        """Project image features (or the black image's) to the language model's width."""
        feats = self.check_image_features(image_features, counts)
        weight = self.multi_modal_projector.linear_1.weight
        return self.multi_modal_projector(feats.to(device=weight.device, dtype=weight.dtype))

    # Same inputs as BabyLlavaForConditionalGeneration.forward, as in transformers' Llava pair (deliberate).
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        image_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
            placeholders = input_ids == self.config.image_token_index
            counts = placeholders.sum(dim=1)
            if bool(counts.any()):
                projected = self.get_image_features(image_features, counts)
                inputs_embeds = inputs_embeds.masked_scatter(
                    placeholders.unsqueeze(-1).expand_as(inputs_embeds), projected.to(inputs_embeds.dtype)
                )
        if position_ids is not None and attention_mask is None and kwargs.get("past_key_values") is None:
            kwargs["use_cache"] = False  # packed rows: a cache would hide the per-example mask from the positions
        return self.language_model(
            attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs
        )


class BabyLlavaForConditionalGeneration(BabyLlavaPreTrainedModel, GenerationMixin):
    """babyllava with its LM head. Logits are aligned with ``input_ids``: image tokens are replaced in place.

    Without ``image_features`` the image tokens get the black image's features, exactly as text-only data is
    seen in training, so any causal-LM consumer (``generate``, lm-eval's ``hf`` model) works unchanged.
    Packed rows (several examples end to end): pass ``position_ids`` restarting at 0 on each example and no
    ``attention_mask``; transformers then keeps attention inside each example (SDPA mask or flash-attention
    variable-length path), and ``image_features`` are flat, one entry per image in placeholder order.
    """

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}

    def __init__(self, config: BabyLlavaConfig):
        super().__init__(config)
        self.model = BabyLlavaModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        image_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        outputs = self.model(
            input_ids=input_ids,
            image_features=image_features,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        hidden = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden[:, keep, :])
        loss = None
        if labels is not None:
            if input_ids is not None:
                labels = labels.masked_fill(input_ids == self.config.image_token_index, -100)
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs
            )
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


__all__ = ["BabyLlavaForConditionalGeneration", "BabyLlavaModel", "BabyLlavaPreTrainedModel"]
