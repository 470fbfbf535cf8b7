"""Byte-level BPE tokenizer trained on BabyLM-format text, with ``<image>`` placeholders after BOS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from ..errors import BabymergeError

PAD, BOS, EOS, IMAGE = "<pad>", "<s>", "</s>", "<image>"
SPECIAL_TOKENS = [PAD, BOS, EOS, IMAGE]
CHUNK_CHARS = 1 << 16


def text_files(folder: str | os.PathLike) -> list[Path]:
    """The ``.train`` files of a BabyLM-format folder (or the one file given), sorted; ``*_dev.train`` are held out."""
    path = Path(folder)
    files = [path] if path.is_file() else sorted(p for p in path.glob("*.train") if not p.stem.endswith("_dev"))
    if not files:
        raise BabymergeError(f"{path}: no .train files found (expected BabyLM-format text)")
    return files


def iter_text(files: list[Path], chunk_chars: int = CHUNK_CHARS) -> Iterator[str]:
    """Yield the text in pieces of about ``chunk_chars`` characters, cut at white space.

    BabyLM files may be one very long line; cutting keeps memory flat and never splits a word.
    """
    for file in files:
        tail = ""
        with open(file, encoding="utf-8") as handle:
            while block := handle.read(chunk_chars):
                block = tail + block
                cut = max(block.rfind(" "), block.rfind("\n"))
                if cut <= 0:
                    tail = block
                    continue
                tail = block[cut + 1 :]
                yield block[:cut]
        if tail.strip():
            yield tail


def set_image_template(tokenizer: PreTrainedTokenizerFast, num_image_tokens: int) -> None:
    """Make ``add_special_tokens=True`` give ``<s> <image>*n text``, the paper's input layout."""
    bos_id, image_id = tokenizer.convert_tokens_to_ids([BOS, IMAGE])
    prefix = " ".join([BOS] + [IMAGE] * num_image_tokens)
    template = processors.TemplateProcessing(
        single=f"{prefix} $A", pair=f"{prefix} $A $B:1", special_tokens=[(BOS, bos_id), (IMAGE, image_id)]
    )
    backend = tokenizer.backend_tokenizer
    backend.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=True), template])


def train_tokenizer(
    files: list[Path], vocab_size: int = 16000, *, num_image_tokens: int = 1, min_frequency: int = 2
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on the files; the special tokens take ids 0-3 (pad, bos, eos, image)."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=True,
    )
    core.train_from_iterator(iter_text(files), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD, extra_special_tokens=[IMAGE]
    )
    set_image_template(tokenizer, num_image_tokens)
    return tokenizer


def subwords_per_word(tokenizer: PreTrainedTokenizerFast, files: list[Path], max_chars: int = 2_000_000) -> float:
    """Subword tokens per white-space word on up to ``max_chars`` of text, taken evenly from each file."""
    words = tokens = 0
    per_file = max(max_chars // len(files), 1)
    for file in files:
        seen = 0
        for piece in iter_text([file]):
            words += len(piece.split())
            tokens += len(tokenizer(piece, add_special_tokens=False)["input_ids"])
            seen += len(piece)
            if seen >= per_file:
                break
    return tokens / max(words, 1)
