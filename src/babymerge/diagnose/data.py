"""Fixed samples of held-out rows, built as ``babymerge train`` builds its rows (``training.data``).

Text is tokenised and packed into ``max_length`` blocks that open with ``<s> <image>*n`` and carry the black
image; captions become ``<s> <image>*n caption </s>`` rows with their image's features. A seeded permutation
of the rows is taken until ``max_tokens`` scored tokens (every token after the first that is not an image
token) are reached, so the same command scores the same rows every time.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from ..errors import BabymergeError
from ..features.store import FeatureFile
from ..formats.captions import read_captions
from ..training.data import (
    Collator,
    TrainingRows,
    image_prefix,
    join_features,
    pack,
    sentence_starts,
    tokenize_captions,
    tokenize_text,
)
from ..training.tokenizer import IMAGE, text_files

POOL = 4  # text words tokenised per scored token wanted: enough rows to sample from, never a whole corpus


def scored_tokens(row: torch.Tensor, image_token_id: int) -> int:
    """Tokens of a row the loss is taken over: all but the first, image tokens left out."""
    return int((row[1:] != image_token_id).sum())


def sample(rows: list[torch.Tensor], image_token_id: int, max_tokens: int, seed: int) -> list[int]:
    """Indices (sorted) of a seeded random subset of ``rows`` holding at least ``max_tokens`` scored tokens."""
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
    chosen, total = [], 0
    for index in order:
        if total >= max_tokens:
            break
        chosen.append(index)
        total += scored_tokens(rows[index], image_token_id)
    return sorted(chosen)


def text_rows(
    tokenizer: PreTrainedTokenizerBase,
    path: Path,
    *,
    num_image_tokens: int,
    max_length: int,
    max_tokens: int,
    seed: int,
    progress: bool = True,
) -> tuple[TrainingRows, Collator]:
    """Packed held-out text blocks (with the model's black image), a fixed sample of ``max_tokens`` tokens."""
    stream = tokenize_text(tokenizer, text_files(path), max_words=POOL * max_tokens, progress=progress)
    blocks, words = pack(
        stream, image_prefix(tokenizer, num_image_tokens), max_length, sentence_starts(stream.ids, tokenizer)
    )
    image_id = tokenizer.convert_tokens_to_ids(IMAGE)
    keep = sample(list(blocks), image_id, max_tokens, seed)
    return TrainingRows(blocks[keep], words[keep]), Collator(tokenizer.pad_token_id, image_id)


def caption_rows(
    tokenizer: PreTrainedTokenizerBase,
    captions: Path,
    features: Path,
    *,
    black: torch.Tensor,
    max_length: int,
    max_tokens: int,
    seed: int,
    progress: bool = True,
) -> tuple[TrainingRows, Collator]:
    """Held-out caption rows with their images' features, a fixed sample of ``max_tokens`` tokens."""
    feature_file = FeatureFile.load(features)
    if tuple(feature_file.black.shape) != tuple(black.shape):
        raise BabymergeError(
            f"{features}: features are {tuple(feature_file.black.shape)} per image but the models expect "
            f"{tuple(black.shape)} (num_image_tokens, vision_feature_dim)"
        )
    texts, images = join_features(read_captions(captions), feature_file, captions)
    ids = tokenize_captions(tokenizer, texts, max_length, progress=progress)
    image_id = tokenizer.convert_tokens_to_ids(IMAGE)
    keep = sample(ids, image_id, max_tokens, seed)
    words = torch.tensor([len(texts[i].split()) for i in keep], dtype=torch.long)
    rows = TrainingRows(
        torch.zeros(0, max_length, dtype=torch.int32),
        torch.zeros(0, dtype=torch.long),
        [ids[i] for i in keep],
        words,
        torch.tensor([images[i] for i in keep], dtype=torch.long),
    )
    return rows, Collator(tokenizer.pad_token_id, image_id, feature_file.features, black)
