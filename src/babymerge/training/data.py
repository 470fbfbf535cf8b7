"""Training data: BabyLM text packed into blocks, image-caption rows, their mix, and the batch collator.

Every row starts ``<s> <image>*n``. A text block carries ``max_length - 1 - n`` tokens of running text, opening
at a sentence start by default (as every scored sentence does), and is paired with the black image's features;
a caption row is ``<s> <image>*n caption </s>`` paired with its image's features. Each row also carries the
number of white-space words of source text it holds, so the run can count words seen (the BabyLM milestones
count words, not tokens).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from ..errors import BabymergeError
from ..features.store import FeatureFile
from ..formats.captions import read_captions
from ..io import atomic_file
from .tokenizer import IMAGE, iter_text

logger = logging.getLogger(__name__)
CACHE_VERSION = "1"
WORD = re.compile(r"\S+")
SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")
BATCH_PIECES = 64


@dataclass
class TokenStream:
    """Token ids of running text and, per token, how many source words start in it (sums to the word count)."""

    ids: torch.Tensor
    words: torch.Tensor

    @property
    def num_words(self) -> int:
        return int(self.words.sum())


def cache_key(tokenizer: PreTrainedTokenizerBase, files: list[Path], *extra: object) -> str:
    """A hash of the tokenizer, the files (path, size, modification time) and any settings."""
    digest = hashlib.sha256(CACHE_VERSION.encode())
    digest.update(tokenizer.backend_tokenizer.to_str().encode())
    for file in files:
        stat = file.stat()
        digest.update(f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    digest.update(json.dumps([str(e) for e in extra]).encode())
    return digest.hexdigest()[:24]


def cached(path: Path, build):
    """Load ``path`` (a torch file) if present, else build, save atomically and return it."""
    if path.is_file():
        logger.info("tokenisation cache hit: %s", path)
        return torch.load(path, weights_only=True)
    value = build()
    with atomic_file(path) as tmp:
        torch.save(value, tmp)
    return value


def words_per_token(text: str, offsets: list[tuple[int, int]]) -> torch.Tensor:
    """Give each word to the first token whose span ends after the word's first character."""
    ends = torch.tensor([end for _, end in offsets], dtype=torch.long)
    starts = torch.tensor([m.start() for m in WORD.finditer(text)], dtype=torch.long)
    owner = torch.searchsorted(ends, starts, right=True).clamp_(max=max(len(offsets) - 1, 0))
    return torch.bincount(owner, minlength=len(offsets)).to(torch.int16)


def first_words(text: str, limit: int) -> str:
    """``text`` cut after its first ``limit`` words."""
    for count, match in enumerate(WORD.finditer(text), start=1):
        if count == limit:
            return text[: match.end()]
    return text


def file_pieces(files: list[Path], max_words: int | None) -> list[list[str]]:
    """Pieces of each file's text (whitespace restored between pieces), at most ``max_words`` over all files."""
    out = []
    for position, file in enumerate(files):
        budget = None if max_words is None else max_words // len(files) + (position < max_words % len(files))
        pieces, seen = [], 0
        if budget == 0:
            out.append(pieces)
            continue
        for piece in iter_text([file]):
            text = piece if not pieces else " " + piece
            if budget is not None:
                count = len(text.split())
                if seen + count >= budget:
                    pieces.append(first_words(text, budget - seen))
                    break
                seen += count
            pieces.append(text)
        out.append(pieces)
    return out


def tokenize_text(
    tokenizer: PreTrainedTokenizerBase,
    files: list[Path],
    *,
    max_words: int | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> TokenStream:
    """Tokenise the files into one stream, ``</s>`` after each file; cached by tokenizer, files and limit."""

    def build() -> dict[str, torch.Tensor]:
        ids, words = [], []
        per_file = file_pieces(files, max_words)
        bar = tqdm(total=sum(map(len, per_file)), desc="tokenising text", unit="piece", disable=not progress)
        for pieces in per_file:
            if not pieces:
                continue
            for start in range(0, len(pieces), BATCH_PIECES):
                batch = pieces[start : start + BATCH_PIECES]
                encoded = tokenizer(batch, add_special_tokens=False, return_offsets_mapping=True)
                columns = (batch, encoded["input_ids"], encoded["offset_mapping"])
                for text, piece_ids, offsets in zip(*columns, strict=True):
                    ids.append(torch.tensor(piece_ids, dtype=torch.int32))
                    words.append(words_per_token(text, offsets))
                bar.update(len(batch))
            ids.append(torch.tensor([tokenizer.eos_token_id], dtype=torch.int32))
            words.append(torch.zeros(1, dtype=torch.int16))
        bar.close()
        return {"ids": torch.cat(ids), "words": torch.cat(words)}

    if cache_dir is None:
        value = build()
    else:
        value = cached(cache_dir / f"text-{cache_key(tokenizer, files, max_words)}.pt", build)
    return TokenStream(value["ids"], value["words"])


def image_prefix(tokenizer: PreTrainedTokenizerBase, num_image_tokens: int) -> list[int]:
    return [tokenizer.bos_token_id] + [tokenizer.convert_tokens_to_ids(IMAGE)] * num_image_tokens


def sentence_starts(ids: torch.Tensor, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """Positions in ``ids`` where a sentence starts: 0, after ``</s>``, and a word after ``.``, ``!`` or ``?``.

    Read off the byte-level tokens: a word token opens with a space (``Ġ``); closing quotes and brackets may
    follow the final mark within its token (``."``). A closing quote in a token of its own hides the end (rare
    once the vocabulary has merged ``."``): that block opens a sentence later.
    """
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    ends = torch.tensor([bool(SENTENCE_END.search(p)) for p in pieces])
    ends[tokenizer.eos_token_id] = True
    words = torch.tensor([p.startswith("Ġ") for p in pieces])
    ids = ids.long()
    inside = torch.nonzero(ends[ids[:-1]] & words[ids[1:]]).flatten() + 1
    return torch.cat([torch.zeros(1, dtype=torch.long), inside])


def block_begins(starts: torch.Tensor, length: int, body: int) -> torch.Tensor:
    """Where each block of ``body`` tokens begins when blocks start at sentence starts.

    A block ends where ``body`` tokens run out; the sentence it cuts opens the next block again (so its head is
    seen twice). A sentence longer than a block goes on in the next block where the cut fell.
    """
    begins, begin, points = [], 0, starts.tolist()
    while begin + body <= length:
        begins.append(begin)
        end = begin + body
        last = points[bisect.bisect_right(points, end) - 1]
        begin = last if last > begin else end
    return torch.tensor(begins, dtype=torch.long)


def pack(
    stream: TokenStream, prefix: list[int], max_length: int, starts: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut the stream into ``max_length``-token rows, each starting with ``prefix``; the tail is dropped.

    ``starts`` (from :func:`sentence_starts`) makes every block open at a sentence start, as an evaluation
    sentence does after the prefix. Returns the rows ``(num_blocks, max_length)`` and the words each holds
    ``(num_blocks,)`` (a head seen twice counts twice).
    """
    body = max_length - len(prefix)
    if body < 1:
        raise BabymergeError(f"max_length {max_length} leaves no room for text after the {len(prefix)} prefix tokens")
    if len(stream.ids) < body:
        raise BabymergeError(f"the text has {len(stream.ids)} tokens, fewer than one block of {body}")
    if starts is None:
        begins = torch.arange(len(stream.ids) // body) * body
    else:
        begins = block_begins(starts, len(stream.ids), body)
    text = stream.ids.unfold(0, body, 1)[begins]  # a view of every window; only the chosen ones are copied
    words = stream.words.unfold(0, body, 1)[begins].sum(dim=1, dtype=torch.long)
    head = torch.tensor(prefix, dtype=stream.ids.dtype).expand(len(begins), -1)
    return torch.cat([head, text], dim=1), words


def join_features(pairs: list[tuple[str, str]], features: FeatureFile, source: Path) -> tuple[list[str], list[int]]:
    """Captions and feature rows joined by image id (exact, else file name without extension)."""
    captions, rows, missing = [], [], set()
    for image_id, caption in pairs:
        row = features.row(image_id)
        if row is None:
            missing.add(image_id)
            continue
        captions.append(caption)
        rows.append(row)
    if not captions:
        raise BabymergeError(
            f"{source}: none of its {len(pairs)} captions' images is in the feature file "
            f"(e.g. {pairs[0][0]!r} vs {features.image_ids[:1]})"
        )
    if missing:
        logger.warning("%s: %d images have no features; their captions are left out", source, len(missing))
    return captions, rows


def tokenize_captions(
    tokenizer: PreTrainedTokenizerBase,
    captions: list[str],
    max_length: int,
    *,
    cache_path: Path | None = None,
    progress: bool = True,
) -> list[torch.Tensor]:
    """``<s> <image>*n caption </s>`` per caption (the template comes from the tokenizer), cut to ``max_length``."""

    def build() -> dict[str, torch.Tensor]:
        rows = []
        for start in tqdm(range(0, len(captions), 1024), desc="tokenising captions", disable=not progress):
            encoded = tokenizer(captions[start : start + 1024], add_special_tokens=True)["input_ids"]
            rows += [ids[: max_length - 1] + [tokenizer.eos_token_id] for ids in encoded]
        lengths = torch.tensor([len(r) for r in rows])
        return {"ids": torch.tensor([i for r in rows for i in r], dtype=torch.int32), "lengths": lengths}

    value = build() if cache_path is None else cached(cache_path, build)
    return list(torch.split(value["ids"], value["lengths"].tolist()))


def mix_by_words(
    text_words: torch.Tensor, caption_words: torch.Tensor, text_ratio: float | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the text blocks and captions to keep so that text makes ``text_ratio`` of the words.

    The larger side is cut down to a random (seeded) subset; ``None`` keeps everything.
    """
    keep_text, keep_caps = torch.arange(len(text_words)), torch.arange(len(caption_words))
    if text_ratio is None:
        return keep_text, keep_caps
    total_text, total_caps = int(text_words.sum()), int(caption_words.sum())
    generator = torch.Generator().manual_seed(seed)
    if total_text * (1 - text_ratio) > total_caps * text_ratio:
        return subset(text_words, total_caps * text_ratio / (1 - text_ratio), generator), keep_caps
    return keep_text, subset(caption_words, total_text * (1 - text_ratio) / text_ratio, generator)


def subset(words: torch.Tensor, target: float, generator: torch.Generator) -> torch.Tensor:
    order = torch.randperm(len(words), generator=generator)
    count = int(torch.searchsorted(words[order].cumsum(0), torch.tensor(target, dtype=torch.float64)).item())
    return order[: max(count, 1)].sort().values


def pack_rows(lengths: list[int], max_length: int, seed: int) -> list[list[int]]:
    """Indices of examples (``lengths`` tokens each, taken in an order shuffled with ``seed``) grouped into rows
    of at most ``max_length`` tokens: each goes whole into the fullest row it fits in (best fit), else opens a
    new row, so no example is ever split across rows."""
    if lengths and max(lengths) > max_length:
        raise BabymergeError(f"an example of {max(lengths)} tokens does not fit in a row of max_length {max_length}")
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed)).tolist()
    rows: list[list[int]] = []
    by_room: list[list[int]] = [[] for _ in range(max_length + 1)]  # open rows by the tokens they have left
    for index in order:
        need = lengths[index]
        room = next((r for r in range(need, max_length) if by_room[r]), max_length)
        if room == max_length:
            rows.append([])
            row = len(rows) - 1
        else:
            row = by_room[room].pop()
        rows[row].append(index)
        by_room[room - need].append(row)
    return rows


class TrainingRows(Dataset):
    """Text blocks followed by caption rows; each item is ``input_ids``, ``num_words`` and ``image_row``
    (the row in the feature file, -1 for the black image). With ``groups`` (from :func:`pack_rows`) each
    caption row holds the captions of one group end to end, and its item carries ``image_rows`` and
    ``lengths`` (one per caption) instead of ``image_row``."""

    def __init__(
        self,
        blocks: torch.Tensor,
        block_words: torch.Tensor,
        captions: list[torch.Tensor] | None = None,
        caption_words: torch.Tensor | None = None,
        caption_images: torch.Tensor | None = None,
        groups: list[list[int]] | None = None,
    ):
        self.blocks, self.block_words, self.groups = blocks, block_words, groups
        self.captions = captions or []
        self.caption_words = caption_words if caption_words is not None else torch.zeros(0, dtype=torch.long)
        self.caption_images = caption_images if caption_images is not None else torch.zeros(0, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.blocks) + len(self.captions if self.groups is None else self.groups)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if index < len(self.blocks):
            return {"input_ids": self.blocks[index], "num_words": int(self.block_words[index]), "image_row": -1}
        index -= len(self.blocks)
        if self.groups is not None:
            group = self.groups[index]
            return {
                "input_ids": torch.cat([self.captions[i] for i in group]),
                "num_words": int(self.caption_words[group].sum()),
                "image_rows": self.caption_images[group].tolist(),
                "lengths": [len(self.captions[i]) for i in group],
            }
        return {
            "input_ids": self.captions[index],
            "num_words": int(self.caption_words[index]),
            "image_row": int(self.caption_images[index]),
        }

    @property
    def num_words(self) -> int:
        return int(self.block_words.sum()) + int(self.caption_words.sum())


@dataclass
class Collator:
    """Right-pads rows into a batch; labels are -100 on pads and image tokens; ``num_tokens`` counts each
    row's tokens without padding.

    With ``features`` set (multimodal runs) each row gets its image's features, text rows the ``black``
    ones; without, no ``image_features`` are passed and the model uses its own black-image buffer.
    ``packed``: rows may hold several examples (items with ``lengths`` and ``image_rows``). The batch then
    has ``position_ids`` restarting at 0 on each example (and on the padding) and no ``attention_mask``, so
    that the model attends only inside each example (SDPA: transformers' mask from the positions; flash
    attention: its variable-length path, from ``cu_seq_lens_*`` and ``max_length_*`` as transformers'
    ``DataCollatorWithFlattening`` gives them, over all rows end to end); ``image_features`` are flat, one per
    image in order; the first token of each example has no label, so no loss crosses an example boundary.
    """

    pad_token_id: int
    image_token_id: int
    features: torch.Tensor | None = None
    black: torch.Tensor | None = None
    packed: bool = False

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row["input_ids"])] = torch.as_tensor(row["input_ids"], dtype=torch.long)
            mask[i, : len(row["input_ids"])] = 1
        labels = ids.masked_fill((mask == 0) | (ids == self.image_token_id), -100)
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        batch["num_words"] = torch.tensor([row["num_words"] for row in rows], dtype=torch.long)
        batch["num_tokens"] = mask.sum(dim=1)
        images = [row.get("image_rows", [row.get("image_row", -1)]) for row in rows]
        if self.packed:
            lengths = [[*row.get("lengths", [len(row["input_ids"])]), width - len(row["input_ids"])] for row in rows]
            batch["position_ids"] = torch.stack([torch.cat([torch.arange(n) for n in row]) for row in lengths])
            batch["labels"] = labels.masked_fill(
                batch.pop("attention_mask").bool() & (batch["position_ids"] == 0), -100
            )
            spans = [n for row in lengths for n in row if n]  # examples and padding, all rows end to end
            ends = torch.tensor([0, *spans], dtype=torch.int32).cumsum(0, dtype=torch.int32)
            batch |= {
                "cu_seq_lens_q": ends,
                "cu_seq_lens_k": ends,
                "max_length_q": max(spans),
                "max_length_k": max(spans),
            }
        if self.features is not None:
            flat = [r for row in images for r in (row if self.packed else row[:1])]
            batch["image_features"] = torch.stack([self.features[r] if r >= 0 else self.black for r in flat])
        return batch


def build_dataset(config, tokenizer: PreTrainedTokenizerBase, num_image_tokens: int, black: torch.Tensor):
    """The run's rows and collator from a :class:`TrainConfig`."""
    from .tokenizer import text_files

    cache = config.cache_folder()
    files = text_files(config.text)
    stream = tokenize_text(tokenizer, files, max_words=config.text_max_words, cache_dir=cache, progress=config.progress)
    starts = None
    if config.block_start == "sentence":
        starts = sentence_starts(stream.ids, tokenizer)
        if tokenizer.convert_ids_to_tokens(tokenizer("So", add_special_tokens=False)["input_ids"])[0][0] != "Ġ":
            logger.warning(
                "%s: the tokenizer adds no space before a string's first word, so blocks open with ' So' where a "
                "scored sentence opens with 'So'; retrain it (babymerge tokenizer) or set block_start: anywhere",
                config.init,
            )
    blocks, block_words = pack(stream, image_prefix(tokenizer, num_image_tokens), config.max_length, starts)
    collator = Collator(tokenizer.pad_token_id, tokenizer.convert_tokens_to_ids(IMAGE))
    if config.mode == "text":
        logger.info("%d text blocks, %d words", len(blocks), int(block_words.sum()))
        return TrainingRows(blocks, block_words), collator

    features = FeatureFile.load(config.features)
    if tuple(features.black.shape) != tuple(black.shape):
        raise BabymergeError(
            f"{config.features}: features are {tuple(features.black.shape)} per image but the model at "
            f"{config.init} expects {tuple(black.shape)} (num_image_tokens, vision_feature_dim)"
        )
    if not torch.allclose(features.black, black, atol=1e-4):
        logger.warning("%s: black image features differ from the model's; text rows use the model's", config.features)
    captions, rows = join_features(read_captions(config.captions), features, config.captions)
    key = cache_key(tokenizer, [config.captions, config.features], config.max_length, num_image_tokens)
    caption_ids = tokenize_captions(
        tokenizer, captions, config.max_length, cache_path=cache / f"captions-{key}.pt", progress=config.progress
    )
    caption_words = torch.tensor([len(c.split()) for c in captions], dtype=torch.long)
    keep_text, keep_caps = mix_by_words(block_words, caption_words, config.text_ratio, config.seed)
    kept = [caption_ids[i] for i in keep_caps.tolist()]
    groups = pack_rows([len(c) for c in kept], config.max_length, config.seed) if config.pack_captions else None
    dataset = TrainingRows(
        blocks[keep_text],
        block_words[keep_text],
        kept,
        caption_words[keep_caps],
        torch.tensor(rows, dtype=torch.long)[keep_caps],
        groups,
    )
    logger.info(
        "%d text blocks (%d words) + %d captions (%d words)%s",
        len(keep_text),
        int(block_words[keep_text].sum()),
        len(keep_caps),
        int(caption_words[keep_caps].sum()),
        f" packed into {len(groups)} rows" if groups is not None else "",
    )
    collator.features, collator.black, collator.packed = features.features, black, config.pack_captions
    return dataset, collator


__all__ = [
    "Collator",
    "TokenStream",
    "TrainingRows",
    "build_dataset",
    "mix_by_words",
    "pack",
    "pack_rows",
    "tokenize_text",
    "words_per_token",
]
