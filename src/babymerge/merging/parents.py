"""The checks every merge path runs on its parents before any work: one tokenizer, one size.

``mergekit-yaml`` and ``babymerge merge`` (the guarded ``run_merge``, babyllava and LLaVA + text-only pairs) and
the sweep's in-memory merges call :func:`check_parents`; each failure is one line naming both model folders and
what differs ("text_config.num_hidden_layers: 2 vs 4", "38 of 300 ids map to different tokens").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..formats.checkpoint import check_same_shapes, shapes
from .checks import MergeInputError, ModelInputs, merge_input

# Language-model config fields that fix the tensors' shapes (under ``text_config`` in a multimodal config).
SIZE_FIELDS = (
    "model_type",
    "num_hidden_layers",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "tie_word_embeddings",
)


def check_parents(models: list[ModelInputs], tensors: bool = True) -> None:
    """Every model has the first one's size and tokenizer (the base model counts as a parent); ``tensors``:
    also the same tensor names and shapes where the architecture is the same (else :func:`check_same_tensors`)."""
    check_same_size(models)
    check_same_tokenizer([m.path for m in models])
    if tensors:
        check_same_tensors(models)


# -- size ------------------------------------------------------------------------------------------------------


def _size_fields(config: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """``{field: (shown name, value)}`` of :data:`SIZE_FIELDS` in a config (a LLaVA's under ``text_config``), with
    the defaults of transformers' config class for its ``model_type`` filled in (a field left out of config.json
    means its default); a model type transformers does not know gives the fields present."""
    prefix, section = ("text_config.", config["text_config"]) if "text_config" in config else ("", config)
    return {name: (prefix + name, value) for name, value in _with_defaults(config, section).items()}


def _with_defaults(config: dict[str, Any], section: dict[str, Any]) -> dict[str, Any]:
    from transformers import CONFIG_MAPPING

    import babymerge.modeling  # noqa: F401  (registers babyllava)

    try:
        text = CONFIG_MAPPING[config.get("model_type")].from_dict(config).get_text_config()
    except (KeyError, ValueError, TypeError, AttributeError):
        return {name: section[name] for name in SIZE_FIELDS if name in section}
    return {name: getattr(text, name) for name in SIZE_FIELDS if hasattr(text, name)}


def size_difference(first: ModelInputs, other: ModelInputs) -> str | None:
    """``text_config.num_hidden_layers: 2 vs 4`` for the first language-model field whose values differ."""
    mine, theirs = _size_fields(first.config), _size_fields(other.config)
    for name in SIZE_FIELDS:
        if name in mine and name in theirs and mine[name][1] != theirs[name][1]:
            (key, a), (other_key, b) = mine[name], theirs[name]
            keys = key if key == other_key else f"{key} vs {other_key}"
            return f"{keys}: {a!r} vs {b!r}"
    return None


def check_same_size(models: list[ModelInputs]) -> None:
    """Same language-model architecture and size: the config fields of :data:`SIZE_FIELDS`."""
    first = models[0]
    for model in models[1:]:
        difference = size_difference(first, model)
        if difference is not None:
            raise MergeInputError(
                f"{first.path} vs {model.path}: {difference} (parents must have the same architecture and size)"
            )


def check_same_tensors(models: list[ModelInputs]) -> None:
    """Models of the first one's architecture hold its tensor names and shapes (other layouts: llava_text.py)."""
    first = models[0]
    for model in models[1:]:
        if model.architecture == first.architecture:
            merge_input(check_same_shapes, shapes(first.tensors), shapes(model.tensors), model.path, first.path)


# -- tokenizer -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenizerContent:
    """What decides how a ``tokenizer.json`` splits text into ids: the model type, id -> token (vocabulary and
    added tokens), the BPE merges and which tokens are special. Padding, truncation and formatting are left out."""

    kind: str
    tokens: dict[int, str]
    merges: tuple[tuple[str, ...], ...]
    special: frozenset[str]


def tokenizer_content(folder: Path) -> TokenizerContent | None:
    """The content of ``folder/tokenizer.json``; None without one (nothing to compare)."""
    file = folder / "tokenizer.json"
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        model = data.get("model") or {}
        vocab = model.get("vocab") or {}
        if isinstance(vocab, list):  # unigram: [token, score] pairs in id order
            tokens = {i: entry[0] for i, entry in enumerate(vocab)}
        else:
            tokens = {int(i): token for token, i in vocab.items()}
        added = data.get("added_tokens") or []
        tokens |= {int(entry["id"]): entry["content"] for entry in added}
        merges = tuple(tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model.get("merges") or ())
        special = frozenset(entry["content"] for entry in added if entry.get("special"))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise MergeInputError(f"{file}: unreadable tokenizer ({type(error).__name__}: {error})") from None
    return TokenizerContent(str(model.get("type")), tokens, merges, special)


def tokenizer_difference(a: TokenizerContent, b: TokenizerContent) -> str | None:
    """What differs, in words (``3738 of 4000 ids map to different tokens (id 57: 'x' vs 'y')``), or None."""
    if a.kind != b.kind:
        return f"tokenizer model {a.kind} vs {b.kind}"
    ids = sorted(set(a.tokens) | set(b.tokens))
    differing = [i for i in ids if a.tokens.get(i) != b.tokens.get(i)]
    if differing:
        i = differing[0]
        return (
            f"{len(differing)} of {len(ids)} ids map to different tokens "
            f"(id {i}: {a.tokens.get(i)!r} vs {b.tokens.get(i)!r})"
        )
    if a.merges != b.merges:
        n = max(len(a.merges), len(b.merges))
        k = next((i for i in range(n) if a.merges[i : i + 1] != b.merges[i : i + 1]), n)
        changed = sum(x != y for x, y in zip(a.merges, b.merges, strict=False)) + abs(len(a.merges) - len(b.merges))
        shown = [" ".join(m[k]) if k < len(m) else None for m in (a.merges, b.merges)]
        return f"same vocabulary but {changed} of {n} BPE merges differ (merge {k}: {shown[0]!r} vs {shown[1]!r})"
    if a.special != b.special:
        only = sorted(a.special ^ b.special)[0]
        return f"token {only!r} is special in only one of them"
    return None


def check_same_tokenizer(folders: list[Path]) -> None:
    """Every folder's ``tokenizer.json`` has the first one's content (folders without one are not compared)."""
    known = [(Path(f), c) for f in folders if (c := tokenizer_content(Path(f))) is not None]
    if not known:
        return
    (first, reference), *rest = known
    for folder, content in rest:
        difference = tokenizer_difference(reference, content)
        if difference is not None:
            raise MergeInputError(
                f"{first} vs {folder}: tokenizers differ: {difference}; parents must share one tokenizer "
                "(the merge would silently keep the first one's)"
            )
