"""A stock transformers LLaVA (``LlavaForConditionalGeneration``, any vision tower) under ``--model babyllava``.

Text requests are scored as the BabyLM 2025 pipeline scores any causal model: ``context + continuation``
tokenised with the tokenizer's own special tokens (no ``<image>``, no image), BabyLM's scored tokens
(``lm.babylm_split``). An image request (``{"visual": image_id}``) is ``<image>`` + its caption: the
``<image>`` token is expanded to the model's image tokens, the raw image goes through the checkpoint's own
image processor (``AutoImageProcessor`` saved with it), and only the caption's tokens are scored. Its raw image
comes from the doc's ``image_file`` (``data.add_image_files``: the data layout's images); a task whose data has
no raw images (only pre-extracted features) is refused in one line.

Each image travels through lm-eval's batching as a virtual id ``vocab_size + row`` repeated over the image
tokens, so requests with different images never share a prefix; each batch processes its images in one
image-processor call and one vision-tower pass.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import transformers

from ..errors import BabymergeError
from ..features.images import ImageSource, black_image, load_rgb
from .lm import BabyLlavaLM
from .plugin import UsageError

STOCK_MODEL_TYPE = "llava"


def is_stock_llava(pretrained: Any) -> bool:
    """Whether ``pretrained`` (a loaded model, a checkpoint folder or a Hub id) is a transformers LLaVA."""
    config = getattr(pretrained, "config", None)
    if config is not None:
        return getattr(config, "model_type", None) == STOCK_MODEL_TYPE
    if not isinstance(pretrained, (str, os.PathLike)):
        return False
    file = Path(pretrained) / "config.json"
    if file.is_file():
        return json.loads(file.read_text()).get("model_type") == STOCK_MODEL_TYPE
    try:
        return transformers.AutoConfig.from_pretrained(str(pretrained)).model_type == STOCK_MODEL_TYPE
    except (OSError, ValueError):
        return False  # HFLM reports what it cannot load


class StockLlavaLM(BabyLlavaLM):
    """``babyllava``'s scoring for a stock LLaVA: BabyLM's text rule, raw images through the checkpoint's image
    processor. ``image_processor``: a processor or where to load one (default: the checkpoint folder)."""

    AUTO_MODEL_CLASS = transformers.AutoModelForImageTextToText

    def __init__(self, pretrained: Any, features: Any = None, image_processor: Any = None, **kwargs: Any) -> None:
        if features not in (None, ""):
            raise BabymergeError(
                "features=: a stock LLaVA reads raw images through its own image processor; feature files are for "
                "babyllava checkpoints"
            )
        kwargs.pop("allow_feature_mismatch", None)
        kwargs.setdefault("backend", "causal")
        kwargs.setdefault("softmax_dtype", "float32")
        super(BabyLlavaLM, self).__init__(pretrained=pretrained, **kwargs)  # HFLM's own loading
        config = self.model.config
        if not self._max_length:
            self._max_length = int(getattr(config.text_config, "max_position_embeddings", 2048))
        self.image_token_index = int(config.image_token_index)
        self.image_base = int(config.text_config.vocab_size)
        self.image_token = self.tokenizer.convert_ids_to_tokens(self.image_token_index)
        self.features = None
        given_path = isinstance(image_processor, (str, os.PathLike))
        self._processor = None if given_path else image_processor
        default = pretrained if isinstance(pretrained, str) else getattr(self.model, "name_or_path", None)
        self._processor_source = image_processor if given_path else default
        self._image_tokens: int | None = None
        self._files: dict[str, int] = {}  # image file -> virtual row
        self._splits: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        self._plans: dict = {}

    @property
    def processor(self) -> Any:
        """The checkpoint's image processor, loaded on the first image request."""
        if self._processor is None:
            source = self._processor_source
            try:
                self._processor = transformers.AutoImageProcessor.from_pretrained(str(source))
            except (OSError, ValueError, TypeError) as error:
                raise BabymergeError(
                    f"{source}: no image processor saved with the checkpoint ({type(error).__name__}); image tasks "
                    "of a stock LLaVA need one (image_processor=PATH in --model_args)"
                ) from None
        return self._processor

    def pixel_values(self, files: list[str]) -> torch.Tensor:
        """The images in ``files`` (empty names: the black image) as the checkpoint's processor prepares them."""
        images = [load_rgb(ImageSource(f, Path(f))) if f else black_image() for f in files]
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        return pixels.to(self.device, self.model.dtype)

    @property
    def image_tokens(self) -> int:
        """How many tokens the model puts in place of one ``<image>`` (the tower's patches, after selection)."""
        if self._image_tokens is None:
            with torch.no_grad():
                features = self.model.model.get_image_features(pixel_values=self.pixel_values([""]))
            self._image_tokens = int(features.pooler_output[0].shape[0])
        return self._image_tokens

    def _image_file(self, request: Any, image: str) -> str:
        doc = getattr(request, "doc", None) or {}
        file = doc.get("image_file")
        if not file:
            task = getattr(request, "task_name", None) or "this task"
            where = doc.get("image_folder") or "the data layout"
            raise UsageError(
                f"{task}: a stock LLaVA needs the raw image {image!r} (looked in {where}); this data ships only "
                "pre-extracted features, which only babyllava checkpoints read (features=PATH)"
            )
        return str(file)

    def _encode(self, request: Any, image: str | None) -> tuple[list[int], list[int]]:
        context, continuation = request.args[0], request.args[1]
        if image is None:
            return self._split(context, continuation)
        context_enc, continuation_enc = self._split(self.image_token + context, continuation)
        if context_enc.count(self.image_token_index) != 1:
            raise BabymergeError(
                f"{self.image_token!r}: the tokenizer does not keep the image token as one token (image {image!r})"
            )
        row = self._files.setdefault(self._image_file(request, image), len(self._files))
        at = context_enc.index(self.image_token_index)
        virtual = [self.image_base + row] * self.image_tokens
        return context_enc[:at] + virtual + context_enc[at + 1 :], continuation_enc

    def _forward_inputs(self, inps: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
        """Virtual image ids back to ``<image>``; the pixel values of each row's image, in row order."""
        virtual = inps >= self.image_base
        if not bool(virtual.any()):
            return inps, {"pixel_values": None}
        rows = torch.where(virtual, inps - self.image_base, torch.full_like(inps, -1)).amax(dim=1).tolist()
        files = list(self._files)
        pixels = self.pixel_values([files[row] for row in rows if row >= 0])
        return inps.masked_fill(virtual, self.image_token_index), {"pixel_values": pixels}
