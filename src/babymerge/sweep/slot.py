"""The model a sweep scores: one instance on its device, into which each point's merged weights are copied;
the tensors of the last few checkpoints read are kept in memory."""

from __future__ import annotations

import os
from functools import lru_cache
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
    """A babyllava model loaded from ``folder`` on ``device``, and the checkpoints merged into it.

    Text-only LMs (``merging/llava_text.py``) are read under the names of a multimodal ``reference`` model.
    """

    def __init__(self, folder: Path, device: str):
        from transformers import AutoTokenizer

        from ..modeling import BabyLlavaForConditionalGeneration

        self.device = process_device(device)
        self.model = BabyLlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
        self.model.to(self.device).eval()
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
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise BabymergeError(
                f"merged weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
