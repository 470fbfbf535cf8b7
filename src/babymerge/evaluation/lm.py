"""lm-eval model type ``babyllava``: BabyLM 2025 causal scoring with per-request image features.

Scoring (BabyLM 2025, causal backend): each candidate ``context + continuation`` is tokenised whole with
special tokens (``<s> <image> text`` for babyllava); the scored tokens are those whose character span ends
after the continuation's first character (its leading space included), as in the pipeline's
``process_causal_sentences``, so the split between context and continuation tokens follows the characters,
not a separate tokenisation of the context. The first token is never scored.

Images: a request whose last argument is ``{"visual": image_id}`` (lm-eval's ``doc_to_image``) is conditioned
on that image's features from the feature file; other requests see the black image, as in training. Each
image travels inside the token sequence as a virtual id ``vocab_size + row`` in place of ``<image>``, so
lm-eval's batching, sorting and logits cache keep requests with different images apart, and text and image
requests mix in one call; ``_model_call`` swaps the ids back and hands the rows' features to the model.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

from .. import modeling  # noqa: F401  (registers babyllava: its checkpoints load without remote code)
from ..errors import BabymergeError
from ..features.store import FeatureFile, mismatch
from . import shared_prefix
from .metrics import BabyLMAnswer


def babylm_split(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of ``context + continuation`` (with special tokens) cut where BabyLM's scored tokens start:
    the first token whose offset end lies past ``len(context)`` (a zero-width space token there counts)."""
    full = context + continuation
    encoding = tokenizer(full, add_special_tokens=True, return_offsets_mapping=True)
    ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
    scored = [i for i, (_, end) in enumerate(offsets) if end > len(context)]
    if not scored:
        raise BabymergeError(f"nothing to score in continuation {continuation!r} (context {context[-40:]!r})")
    if scored != list(range(scored[0], len(ids))):
        raise BabymergeError(
            f"tokens after the continuation {continuation!r} are not part of it (a special token the tokenizer "
            f"appends?); BabyLM scoring needs the scored tokens to end the sequence"
        )
    cut = max(scored[0], 1)
    return ids[:cut], ids[cut:]


def _image_of(args: tuple) -> str | None:
    if len(args) < 3 or not isinstance(args[2], dict):
        return None
    visual = args[2].get("visual")
    if isinstance(visual, (list, tuple)):
        if len(visual) != 1:
            raise BabymergeError(f"a request carries {len(visual)} images; babyllava scoring takes exactly one")
        visual = visual[0]
    return None if visual is None else str(visual)


@register_model("babyllava")
class BabyLlavaLM(HFLM):
    """HFLM for babyllava checkpoints (a folder or a loaded model) with optional image features.

    ``features``: a feature file path (``babymerge features``) or a ``FeatureFile``; needed by image tasks.
    One made with another backbone or pooling than the checkpoint records is refused unless
    ``allow_feature_mismatch`` (a model_args key).
    babyllava checkpoints load with babymerge's own code: ``trust_remote_code`` stays off unless asked for.
    Answers are ``BabyLMAnswer`` tuples, which the whole-sentence tasks require (see ``metrics.py``).
    Logits, log-softmax and the sums over a continuation are float32 whatever the model's dtype.
    """

    MULTIMODAL = True

    def __new__(cls, pretrained: Any = None, *args: Any, **kwargs: Any) -> BabyLlavaLM:
        """A stock transformers LLaVA (``LlavaForConditionalGeneration``) gets ``stock_llava.StockLlavaLM``."""
        if cls is BabyLlavaLM:
            from .stock_llava import StockLlavaLM, is_stock_llava

            if is_stock_llava(pretrained):
                cls = StockLlavaLM
        return super().__new__(cls)

    def __init__(
        self,
        pretrained: Any,
        features: str | os.PathLike | FeatureFile | None = None,
        allow_feature_mismatch: bool | str = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("backend", "causal")
        kwargs.setdefault("softmax_dtype", "float32")  # option log-probs in float32 on HFLM's fallback path too
        super().__init__(pretrained=pretrained, **kwargs)
        config = self.model.config
        if not hasattr(config, "image_token_index") or not hasattr(config, "text_config"):
            raise BabymergeError(f"model type {config.model_type!r} is not babyllava (use --model hf for it)")
        if not self._max_length:
            self._max_length = int(config.text_config.max_position_embeddings)
        self.image_token_index = int(config.image_token_index)
        self.image_base = int(config.text_config.vocab_size)
        self.allow_feature_mismatch = str(allow_feature_mismatch).lower() in ("true", "1", "yes")
        self.features = self._load_features(features)
        self._splits: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        self._plans: dict[tuple, shared_prefix.PrefixPlan] = {}

    def _load_features(self, features: str | os.PathLike | FeatureFile | None) -> FeatureFile | None:
        if features is None or features == "":
            return None
        file = features if isinstance(features, FeatureFile) else FeatureFile.load(features)
        config = self.model.config
        if (problem := mismatch(file.meta, config)) and not self.allow_feature_mismatch:
            name = "feature file" if isinstance(features, FeatureFile) else features
            allow = "--allow-feature-mismatch (allow_feature_mismatch=true in --model_args)"
            raise BabymergeError(f"{name}: {problem}; pass {allow} to evaluate anyway")
        if (file.num_image_tokens, file.feature_dim) != (config.num_image_tokens, config.vision_feature_dim):
            raise BabymergeError(
                f"feature file holds ({file.num_image_tokens}, {file.feature_dim}) features per image but the model "
                f"expects (num_image_tokens, vision_feature_dim) = "
                f"({config.num_image_tokens}, {config.vision_feature_dim})"
            )
        return file

    def image_row(self, image_id: str) -> int:
        """Row of ``image_id`` in the feature file (an id may omit the file extension)."""
        if self.features is None:
            raise BabymergeError(f"image {image_id!r} requested but no feature file given (model_args features=PATH)")
        row = self.features.row(image_id)
        if row is None:
            raise BabymergeError(
                f"image {image_id!r} is not in the feature file ({len(self.features.image_ids)} images)"
            )
        return row

    def loglikelihood(self, requests: list, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        new_requests = []
        for request in tqdm(requests, desc="Tokenizing (BabyLM rules)", disable=disable_tqdm):
            context, continuation = request.args[0], request.args[1]
            image = _image_of(request.args)
            context_enc, continuation_enc = self._encode(request, image)
            new_requests.append(((context, continuation, image), context_enc, continuation_enc))
        answers = self._loglikelihood_tokens(new_requests, disable_tqdm=disable_tqdm)
        return [BabyLMAnswer(answer) for answer in answers]

    def _split(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        split = self._splits.get((context, continuation))
        if split is None:
            split = self._splits[(context, continuation)] = babylm_split(self.tokenizer, context, continuation)
        return split

    def _encode(self, request: Any, image: str | None) -> tuple[list[int], list[int]]:
        """Context and continuation tokens of one request, its image as a virtual id in place of ``<image>``."""
        context_enc, continuation_enc = self._split(request.args[0], request.args[1])
        if image is not None:
            virtual = self.image_base + self.image_row(image)
            context_enc = [virtual if t == self.image_token_index else t for t in context_enc]
            if virtual not in context_enc:
                raise BabymergeError(f"the tokenizer added no <image> token for image {image!r}")
        return context_enc, continuation_enc

    def _loglikelihood_tokens(
        self, requests: list, disable_tqdm: bool = False, override_bs: int | None = None
    ) -> list[tuple[float, bool]]:
        batch_size = override_bs or self.batch_size
        if self.backend != "causal" or not isinstance(batch_size, int):
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        key = (self.max_length, batch_size, tuple(request[0] for request in requests))
        plan = self._plans.get(key)
        if plan is None:
            plan = shared_prefix.plan([(r[1], r[2]) for r in requests], self.max_length, batch_size)
            if None not in key[2]:  # loglikelihood_rolling's windows carry no request key
                self._plans = {**dict(list(self._plans.items())[-7:]), key: plan}  # the last 8 request sets
        answers: list[tuple[float, bool] | None] = [None] * len(requests)
        with tqdm(total=len(requests), desc="Running loglikelihood requests", disable=disable_tqdm) as bar:
            batches = shared_prefix.score(
                plan, hidden=self._hidden_states, head=self._head, softmax_dtype=self.softmax_dtype
            )
            for indices, batch_answers in batches:
                for i, answer in zip(indices, batch_answers, strict=True):
                    answers[i] = answer
                    if requests[i][0] is not None:
                        self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)
                bar.update(len(indices))
        return answers  # type: ignore[return-value]

    def _model_inputs(self, inps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Swap virtual image ids back to ``<image>``; each row's features (None when no row has an image)."""
        virtual = inps >= self.image_base
        if not bool(virtual.any()):
            return inps, None
        model = self.model
        rows = torch.where(virtual, inps - self.image_base, torch.full_like(inps, -1)).amax(dim=1)
        black = model.model.black_image_features.detach().to("cpu", torch.float32)
        feats = black.unsqueeze(0).repeat(inps.shape[0], 1, 1)
        has_image = rows >= 0
        feats[has_image.cpu()] = self.features.features[rows[has_image].cpu()]
        return inps.masked_fill(virtual, self.image_token_index), feats.to(inps.device)

    def _forward_inputs(self, inps: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
        """Token ids for the model and its image keyword arguments (``_model_inputs``'s features)."""
        ids, feats = self._model_inputs(inps)
        return ids, {"image_features": feats}

    def _forward_context(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        stack.enter_context(
            torch.autocast(
                device_type=self.device.type,
                dtype=self.mixed_precision_dtype,
                enabled=self.mixed_precision_dtype is not None,
            )
        )
        return stack

    def _hidden_states(self, stems: shared_prefix.Stems) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Last hidden states of each distinct stem, then of each request's tail with its stem's cache."""
        ids, images = self._forward_inputs(stems.ids.to(self.device))
        with_tails = stems.tails.shape[1] > 0
        with self._forward_context():
            out = self.model.model(input_ids=ids, **images, use_cache=with_tails)
            if not with_tails:
                return out.last_hidden_state, None
            cache = out.cache
            cache.batch_select_indices(stems.of)  # a copy of its stem's cache per request (CPU index: any device)
            mask, positions = stems.tail_inputs()
            tails = self.model.model(
                input_ids=stems.tails.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=positions.to(self.device),
                cache=cache,
            )
            return out.last_hidden_state, tails.last_hidden_state

    def _head(self, rows: torch.Tensor) -> torch.Tensor:
        """Logits in float32 whatever the model's dtype: bf16 logits would tie options that float32 keeps apart.
        The float32 copy of the head's weights is made once, and again only when they change (the sweep copies
        each merge into the same tensors: their version counter moves)."""
        head = self.model.get_output_embeddings()
        key = tuple((t.data_ptr(), t._version, t.dtype) for t in (head.weight, head.bias) if t is not None)
        cached = getattr(self, "_head_float32", None)
        if cached is None or cached[0] != key:
            bias = None if head.bias is None else head.bias.detach().float()
            cached = self._head_float32 = (key, head.weight.detach().float(), bias)
        with torch.no_grad():
            return torch.nn.functional.linear(rows.float(), cached[1], cached[2])

    def _model_call(
        self, inps: torch.Tensor, attn_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None
    ):
        ids, images = self._forward_inputs(inps)
        if all(value is None for value in images.values()):
            return super()._model_call(inps, attn_mask, labels)
        with self._forward_context():
            return self.model(input_ids=ids, **images).logits
