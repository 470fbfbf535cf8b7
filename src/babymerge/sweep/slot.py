"""The model a sweep scores: one instance on its device, into which each point's merged weights are copied;
the tensors of the last few checkpoints read are kept in memory."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache, lru_cache
from pathlib import Path

import torch

from ..errors import BabymergeError
from ..merging.llava_text import as_multimodal_state, is_text_lm_folder, multimodal_only_names
from .merge import MULTIMODAL, TEXT, MergeSpec, check_same_states, check_same_tensors, load_state

CACHED_CHECKPOINTS = 6


def process_device(device: str) -> str:
    """``cuda`` under torchrun / accelerate means this process's GPU (``cuda:$LOCAL_RANK``)."""
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return device


class ModelSlot:
    """A babyllava or stock transformers LLaVA loaded from ``folder`` on ``device``, and the checkpoints merged
    into it. Merges are made under the checkpoints' own tensor names; text-only LMs (``merging/llava_text.py``)
    are read under the names of a multimodal ``reference`` model.
    """

    def __init__(self, folder: Path, device: str):
        from transformers import AutoTokenizer

        self.device = process_device(device)
        self.model = load_model(folder)
        self.model.to(self.device).eval()
        self.rename = checkpoint_names(self.model)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.state = lru_cache(maxsize=CACHED_CHECKPOINTS)(self._read_state)
        self._checked: set[tuple[Path, ...]] = set()

    def _read_state(self, folder: Path, reference: Path) -> dict[str, torch.Tensor]:
        """A checkpoint's tensors in the model's layout (inputs are checked when a sweep begins)."""
        state = load_state(folder, check=False)
        if not is_text_lm_folder(folder):
            return state
        return as_multimodal_state(state, folder, self.state(reference, reference), reference)

    def merged(self, folders: dict[str, Path], spec: MergeSpec, reference: Path) -> dict[str, torch.Tensor]:
        """``spec``'s merge of the ``TEXT``, ``MULTIMODAL`` (and ``BASE``) checkpoints; for a text-only LM, the
        vision tower and projector whole from the multimodal model."""
        states = {role: self.state(folder, reference) for role, folder in folders.items()}
        text_lm = is_text_lm_folder(folders[TEXT])
        if tuple(folders.values()) not in self._checked:
            if text_lm:  # LM names mapped into the multimodal layout
                check_same_states(states, folders)
            else:
                check_same_tensors(folders)
            self._checked.add(tuple(folders.values()))
        merged = spec.merge(states, folders)
        if text_lm:
            merged |= {n: states[MULTIMODAL][n] for n in multimodal_only_names(folders[MULTIMODAL], merged)}
        return merged

    def load(self, state: dict[str, torch.Tensor]) -> None:
        """Copy ``state`` into the model (in place: the LM wrapper keeps its reference)."""
        load_weights(self.model, {self.rename(name): tensor for name, tensor in state.items()})


def load_model(folder: Path) -> torch.nn.Module:
    """The model a sweep scores, in float32: a stock transformers LLaVA as transformers loads it, else babyllava."""
    from ..evaluation.stock_llava import is_stock_llava

    if is_stock_llava(folder):
        from transformers import AutoModelForImageTextToText

        return AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32)
    from ..modeling import BabyLlavaForConditionalGeneration

    return BabyLlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)


def checkpoint_names(model: torch.nn.Module) -> Callable[[str], str]:
    """A checkpoint's tensor name -> ``model``'s own, by the renamings transformers applies when it loads the model
    (a stock LLaVA is saved as ``language_model.model.*`` but holds ``model.language_model.*``); babyllava keeps
    its names."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    from ..evaluation.stock_llava import is_stock_llava

    if not is_stock_llava(model):
        return str
    conversions = get_model_conversion_mapping(model)
    renamings = [c for c in conversions if isinstance(c, WeightRenaming)]
    converters = [c for c in conversions if isinstance(c, WeightConverter)]
    own = model.state_dict()

    @cache
    def rename(name: str) -> str:
        renamed, converted = rename_source_key(name, renamings, converters, model.base_model_prefix, own)
        if converted is not None:
            raise BabymergeError(f"tensor {name}: transformers converts it when loading; the sweep needs it as saved")
        return renamed

    return rename


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` into ``model`` in place; a tensor it lacks must be tied to one it holds (``lm_head``)."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded = {params[name].data_ptr() for name in state if name in params}
    untied = [name for name in missing if name not in params or params[name].data_ptr() not in loaded]
    if unexpected or untied:
        name = (unexpected or untied)[0]
        problem = "is not a tensor of" if unexpected else "is missing for"
        raise BabymergeError(f"merged weights do not fit the model: tensor {name} {problem} the {type(model).__name__}")
