"""Byte-level BPE tokenizer trained on BabyLM-format text, with ``<image>`` placeholders after BOS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from ..errors import BabymergeError
from .config import TokenizerConfig

PAD, BOS, EOS, IMAGE = "<pad>", "<s>", "</s>", "<image>"
SPECIAL_TOKENS = [PAD, BOS, EOS, IMAGE]
CHUNK_CHARS = 1 << 16


def text_files(folder: str | os.PathLike) -> list[Path]:
    """The ``.train`` files of a BabyLM-format folder (or the one file given), sorted; ``*_dev.train`` are held out."""
    path = Path(folder)
    if not path.exists():
        raise BabymergeError(f"{path}: no such file or folder (expected BabyLM-format text: a folder of .train files)")
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
    files: list[Path],
    vocab_size: int = 16000,
    *,
    num_image_tokens: int = 1,
    min_frequency: int = 2,
    progress: bool = True,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on the files; the special tokens take ids 0-3 (pad, bos, eos, image)."""
    core = Tokenizer(models.BPE())
    # A space before the first word: a sentence's first word ("Who ...") becomes the same token as mid-text
    # (" Who"), as Llama's SentencePiece tokenizers do; without it, every BLiMP sentence opens with rare pieces.
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    core.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", 1, 0)])  # drop that space again
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=progress,
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


PAPER_RATIO = 1.36  # subwords per word the paper reports


def run_tokenizer(config: TokenizerConfig) -> str:
    """The tokenizer stage (``babymerge tokenizer``, the demo): check the sizes, train on ``config.text``, save
    to ``config.out`` atomically; returns the one-line summary (vocabulary, subwords per word)."""
    from ..io import atomic_dir

    if config.vocab_size < 300:
        raise BabymergeError(f"--vocab-size must be at least 300 (256 bytes + specials), got {config.vocab_size}")
    if config.num_image_tokens < 1:
        raise BabymergeError(f"--num-image-tokens must be at least 1, got {config.num_image_tokens}")
    files = text_files(config.text)
    tokenizer = train_tokenizer(
        files,
        config.vocab_size,
        num_image_tokens=config.num_image_tokens,
        min_frequency=config.min_frequency,
        progress=config.progress,
    )
    budget = config.ratio_chars or sum(file.stat().st_size for file in files)
    ratio = subwords_per_word(tokenizer, files, max_chars=budget)
    with atomic_dir(config.out, overwrite=config.overwrite) as tmp:
        tokenizer.save_pretrained(tmp)
    measured = f"first {budget:,} characters" if config.ratio_chars else "all text"
    return (
        f"wrote {config.out}: vocabulary {len(tokenizer)} from {len(files)} files; "
        f"{ratio:.2f} subwords per word on {measured} (paper: {PAPER_RATIO})"
    )
