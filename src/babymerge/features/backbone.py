"""Vision backbones: any Hugging Face vision model by name or path, or a tiny random DINOv2 for tests and demos."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoImageProcessor, AutoModel, Dinov2Config, Dinov2Model
from transformers.utils import is_torchvision_available

from ..errors import BabymergeError
from .config import DEFAULT_BACKBONE

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class Backbone:
    """A vision model with its image processor; ``random`` marks randomly initialised weights."""

    model: torch.nn.Module
    processor: Any
    name: str
    random: bool = False

    @property
    def patch_size(self) -> int | None:
        size = getattr(self.model.config, "patch_size", None)
        return int(size[0] if isinstance(size, (list, tuple)) else size) if size else None

    @property
    def num_prefix_tokens(self) -> int:
        """CLS plus register tokens before the patch tokens."""
        return 1 + int(getattr(self.model.config, "num_register_tokens", 0) or 0)


def load_backbone(name_or_path: str = DEFAULT_BACKBONE, device: str = "cpu") -> Backbone:
    """``AutoModel`` + ``AutoImageProcessor`` from a Hub name (cached) or a local folder, in eval mode.

    A missing local folder, or a Hub name that is not cached while offline, is refused at once (``model_source``).
    """
    from ..model_source import resolve

    name_or_path = resolve(name_or_path, "backbone", instead=", or use --random-backbone (tests and demos)")
    try:
        processor = AutoImageProcessor.from_pretrained(name_or_path)
        model = AutoModel.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        reason = " ".join(str(error).split())[:200]
        raise BabymergeError(
            f"backbone {name_or_path!r} could not be loaded (not a local folder nor in the Hugging Face cache; "
            f"offline runs can use --random-backbone): {reason}"
        ) from None
    return Backbone(model.eval().to(device), processor, str(name_or_path))


def random_dinov2(seed: int = 0, *, hidden_size: int = 32, image_size: int = 56) -> Backbone:
    """A tiny randomly initialised DINOv2 (2 layers, patch 14, ``image_size`` crops) with a DINOv2-style processor.

    Its features carry no meaning: it exists so the pipeline can run where no pretrained weights can be had.
    """
    config = Dinov2Config(
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        image_size=image_size,
        patch_size=14,
    )
    torch.manual_seed(seed)
    model = Dinov2Model(config).eval()
    if is_torchvision_available():
        from transformers import BitImageProcessor as processor_class
    else:  # the PIL backend, named explicitly so transformers does not warn about the fallback
        from transformers import BitImageProcessorPil as processor_class
    processor = processor_class(
        do_resize=True,
        size={"shortest_edge": image_size + image_size // 7},
        resample=3,
        do_center_crop=True,
        crop_size={"height": image_size, "width": image_size},
        do_rescale=True,
        do_normalize=True,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        do_convert_rgb=True,
    )
    return Backbone(model, processor, f"random-tiny-dinov2-seed{seed}", random=True)


def patch_tokens(backbone: Backbone, pixel_values: torch.Tensor, layer: int = -2) -> tuple[torch.Tensor, int, int]:
    """Patch tokens ``(batch, rows * cols, dim)`` of hidden layer ``layer`` without CLS/register tokens.

    Returns the tokens and the patch grid's ``rows, cols`` (row-major order, as the backbone lays them out).
    """
    param = next(backbone.model.parameters())
    outputs = backbone.model(pixel_values=pixel_values.to(param.device, param.dtype), output_hidden_states=True)
    hidden = outputs.hidden_states[layer]
    patch = backbone.patch_size
    if patch:
        rows, cols = pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch
        prefix = hidden.shape[1] - rows * cols
        if prefix != backbone.num_prefix_tokens:
            raise BabymergeError(
                f"backbone {backbone.name}: {hidden.shape[1]} tokens for a {rows}x{cols} patch grid; expected "
                f"{backbone.num_prefix_tokens} CLS/register tokens before the patches"
            )
    else:
        prefix = backbone.num_prefix_tokens
        rows = cols = int(round((hidden.shape[1] - prefix) ** 0.5))
        if rows * cols != hidden.shape[1] - prefix:
            raise BabymergeError(f"backbone {backbone.name}: {hidden.shape[1] - prefix} patch tokens are not a square")
    return hidden[:, prefix:].float(), rows, cols
