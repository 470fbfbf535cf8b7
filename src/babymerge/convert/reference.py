"""Convert checkpoints between babyllava and the authors' reference Llava layout, tensor for tensor.

Reference layout (``model_type`` llava): ``language_model.model.*``, ``language_model.lm_head.*``,
``multi_modal_projector.linear_{1,2}.*`` and optionally ``vision_tower.*`` (the frozen DINOv2), with a
``LlavaConfig`` (llama text config, dinov2 vision config, ``image_seq_length`` = image tokens). transformers 5's
own Llava names (``model.language_model.*``, ``model.multi_modal_projector.*``, ``model.vision_tower.*``) are
read as well. Weights are read as checkpoint folders (``formats.checkpoint``) and written with safetensors
directly, so nothing is re-initialised: every shared tensor is copied bit for bit. The reference layout has no
place for the black image's features, so they travel beside it as ``black_image.safetensors`` (a
``FeatureFile`` with no images).

The ``babyllava`` model type is registered by importing ``babymerge.modeling`` (done here). Functions raise
``BabymergeError`` (``BadValueError``, a ``ValueError`` too, for the conversion's own checks) with one line
naming the tensor or file.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM, Dinov2Config, LlavaConfig

from .. import modeling  # noqa: F401  (registers babyllava with transformers' Auto classes)
from ..errors import BadValueError
from ..features.store import FeatureFile
from ..formats.checkpoint import check_same_shapes, read_state, shapes

BLACK_FILE = "black_image.safetensors"
BLACK_KEY = "model.black_image_features"
COPIED_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
)
# (reference prefix, babyllava prefix); the first matching prefix wins.
REFERENCE_TO_BABYLLAVA = (
    ("language_model.model.", "model.language_model."),
    ("language_model.lm_head.", "lm_head."),
    ("multi_modal_projector.", "model.multi_modal_projector."),
    # transformers 5 Llava names
    ("model.language_model.", "model.language_model."),
    ("model.multi_modal_projector.", "model.multi_modal_projector."),
    ("lm_head.", "lm_head."),
)
VISION_PREFIXES = ("vision_tower.", "model.vision_tower.")
PROJECTOR_NAMES = {f"linear_{i}.{p}" for i in (1, 2) for p in ("weight", "bias")}
# DINOv2-large, the paper's frozen vision tower (hidden size 1024).
DINOV2_LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": 518}


def _exists(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False


def read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise BadValueError(f"{path}: not found") from None
    except json.JSONDecodeError as error:
        raise BadValueError(f"{path}: not valid JSON ({error})") from None


def reference_to_babyllava_name(key: str) -> str | None:
    """The babyllava name of a reference tensor; None for the vision tower; ValueError for anything else."""
    if key.startswith(VISION_PREFIXES):
        return None
    for old, new in REFERENCE_TO_BABYLLAVA:
        if key.startswith(old):
            if old.endswith("multi_modal_projector.") and key[len(old) :] not in PROJECTOR_NAMES:
                break
            return new + key[len(old) :]
    raise BadValueError(f"tensor {key!r} is not part of the reference Llava layout")


def babyllava_to_reference_name(key: str) -> str | None:
    """The reference name of a babyllava tensor; None for the black image's features."""
    if key == BLACK_KEY:
        return None
    for new, old in REFERENCE_TO_BABYLLAVA[:3]:
        if key.startswith(old):
            return new + key[len(old) :]
    raise BadValueError(f"tensor {key!r} is not part of the babyllava layout")


def check_against(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str, names: dict[str, str]) -> None:
    """Every tensor the model expects is present with its shape, and nothing else; ``names`` maps back for errors."""
    check_same_shapes(shapes(model.state_dict()), shapes(tensors), source, "the config", names=names)


def _image_token_id(folder: str) -> int | None:
    if not _exists(f"{folder}/tokenizer.json"):
        return None
    added = read_json(f"{folder}/tokenizer.json").get("added_tokens", [])
    return next((t["id"] for t in added if t.get("content") == "<image>"), None)


def copy_files(src: str, dst: str, names: tuple[str, ...] = COPIED_FILES) -> list[str]:
    """Copy the named files that exist in ``src`` byte for byte; returns the names copied."""
    copied = []
    for name in names:
        if _exists(f"{src}/{name}") and not _exists(f"{dst}/{name}"):
            with open(f"{src}/{name}", "rb") as source, open(f"{dst}/{name}", "wb") as target:
                target.write(source.read())
            copied.append(name)
    return copied


def to_babyllava(src: str, dst: str, black_features: str | None = None) -> list[str]:
    """Write the babyllava form of the reference checkpoint ``src`` into the (empty) folder ``dst``.

    The black image's features come from the feature file ``black_features``, else ``src/black_image.safetensors``,
    else zeros. Returns notes for the user (dropped vision tower, zero black features).
    """
    config, text = read_reference_config(src)
    renamed, names, notes = babyllava_weights(src, text.get("tie_word_embeddings", config.get("tie_word_embeddings")))
    proj = renamed.get("model.multi_modal_projector.linear_1.weight")
    if proj is None:
        raise BadValueError(f"{src}: missing tensor 'multi_modal_projector.linear_1.weight'")
    tokens = int(config.get("image_seq_length") or 1)
    black_path = black_features or (f"{src}/{BLACK_FILE}" if _exists(f"{src}/{BLACK_FILE}") else None)
    black, black_meta, note = black_image_features(black_path, tokens, int(proj.shape[1]))
    notes.append(note)
    renamed[BLACK_KEY] = black.to(proj.dtype)
    baby = babyllava_config(config, text, int(proj.shape[1]), tokens, black_meta)
    _check_tokenizer(src, baby.image_token_index)
    model = AutoModelForCausalLM.from_config(baby)
    check_against(model, renamed, src, names)
    model.load_state_dict(renamed, strict=True, assign=True)
    model.save_pretrained(dst)
    copy_files(src, dst)
    return notes


def read_reference_config(src: str) -> tuple[dict, dict]:
    """The reference checkpoint's ``config.json`` and its llama ``text_config``, refused if of another kind."""
    config = read_json(f"{src}/config.json")
    if config.get("model_type") != "llava":
        raise BadValueError(f"{src}/config.json: model_type is {config.get('model_type')!r}; expected 'llava'")
    text = dict(config.get("text_config") or {})
    if text.get("model_type", "llama") != "llama":
        found = text.get("model_type")
        raise BadValueError(f"{src}/config.json: text_config.model_type is {found!r}; expected 'llama'")
    return config, text


def babyllava_weights(src: str, tied: bool | None) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str]]:
    """The reference tensors under babyllava names (vision tower dropped, a tied head made explicit), the map
    back to the reference names, and notes for the user."""
    renamed: dict[str, torch.Tensor] = {}
    names: dict[str, str] = {}
    notes: list[str] = []
    dropped = 0
    for key, tensor in read_state(src).items():
        new = reference_to_babyllava_name(key)
        if new is None:
            dropped += 1
        elif new in renamed:
            raise BadValueError(f"{src}: tensor {key!r} duplicates {names[new]!r}")
        else:
            renamed[new], names[new] = tensor, key
    if dropped:
        notes.append(f"dropped the vision tower ({dropped} tensors): babyllava takes pre-extracted features")
    if "lm_head.weight" not in renamed and tied:
        renamed["lm_head.weight"] = renamed["model.language_model.embed_tokens.weight"].clone()
        notes.append("lm_head.weight copied from the tied input embeddings")
    return renamed, names, notes


def black_image_features(path: str | None, tokens: int, width: int) -> tuple[torch.Tensor, dict[str, str], str]:
    """The black image's ``(tokens, width)`` features from the feature file ``path`` with its metadata, else
    zeros; and a note for the user."""
    if not path:
        note = "warning: no --black-features given: the black image's features are ZEROS"
        return torch.zeros(tokens, width), {}, note
    file = FeatureFile.load(path)
    black = file.black.reshape(-1, file.black.shape[-1])
    if tuple(black.shape) != (tokens, width):
        raise BadValueError(
            f"{path}: black has shape {tuple(black.shape)}; expected ({tokens}, {width}) "
            "(image_seq_length, projector input)"
        )
    return black, file.meta, f"black image features from {path}"


def babyllava_config(config: dict, text: dict, width: int, tokens: int, black_meta: dict[str, str]) -> Any:
    """The babyllava config of a reference config: its text model, projector and image token, and the vision
    side (pooling, grid, backbone) from the black image's feature-file metadata where known."""
    pooling = black_meta.get("pooling") or ("mean" if tokens == 1 else "patches")
    grid = black_meta.get("grid_size", "")
    vision = config.get("vision_config") or {}
    return AutoConfig.for_model(
        "babyllava",
        text_config=text,
        vision_feature_dim=width,
        projector_hidden_act=config.get("projector_hidden_act", "gelu"),
        image_token_index=int(config.get("image_token_index", 32000)),
        num_image_tokens=tokens,
        image_pooling=pooling,
        image_grid_size=int(grid) if grid.strip() and pooling == "grid" else None,
        vision_backbone=black_meta.get("backbone") or vision.get("_name_or_path") or "facebook/dinov2-large",
        bos_token_id=text.get("bos_token_id"),
        eos_token_id=text.get("eos_token_id"),
        pad_token_id=text.get("pad_token_id"),
        tie_word_embeddings=False,
    )


def _check_tokenizer(folder: str, image_token_index: int) -> None:
    found = _image_token_id(folder)
    if found is not None and found != image_token_index:
        raise BadValueError(
            f"{folder}/tokenizer.json: <image> has id {found} but the config's image_token_index is {image_token_index}"
        )


def dinov2_config(feature_dim: int) -> dict:
    """A DINOv2 config whose width matches the features: DINOv2-large for 1024-d, else a same-width stand-in."""
    if feature_dim == DINOV2_LARGE["hidden_size"]:
        config = Dinov2Config(**DINOV2_LARGE)
        config._name_or_path = "facebook/dinov2-large"
    else:
        heads = next(h for h in (16, 12, 8, 4, 2, 1) if feature_dim % h == 0)
        config = Dinov2Config(hidden_size=feature_dim, num_attention_heads=heads)
    return config.to_dict()


def to_reference(src: str, dst: str, vision_tower: str | None = None) -> list[str]:
    """Write the reference Llava form of the babyllava checkpoint ``src`` into the (empty) folder ``dst``.

    ``vision_tower``: a folder holding a DINOv2 (``config.json`` + safetensors) to attach as ``vision_tower.*``.
    """
    model_type = read_json(f"{src}/config.json").get("model_type")
    if model_type != "babyllava":
        raise BadValueError(f"{src}/config.json: model_type is {model_type!r}; expected 'babyllava'")
    config = AutoConfig.from_pretrained(src)
    weights = read_state(src)
    check_against(AutoModelForCausalLM.from_config(config), weights, src, {})
    out = {name: tensor.contiguous() for key, tensor in weights.items() if (name := babyllava_to_reference_name(key))}
    vision, notes = attach_vision_tower(out, vision_tower, config.vision_feature_dim)
    if config.num_image_tokens != 1:
        notes.append(f"image_seq_length is {config.num_image_tokens}; the authors' code expects 1 pooled token")
    llava_config(config, vision).save_pretrained(dst)
    save_file(out, f"{dst}/model.safetensors", metadata={"format": "pt"})
    black = weights[BLACK_KEY].float()
    meta = {
        "backbone": config.vision_backbone or "",
        "pooling": config.image_pooling,
        "grid_size": str(config.image_grid_size or ""),
    }
    FeatureFile([], black.new_zeros(0, *black.shape), black, meta).save(f"{dst}/{BLACK_FILE}")
    notes.append(f"the black image's features are in {BLACK_FILE} beside the weights")
    copy_files(src, dst, COPIED_FILES + ("generation_config.json",))
    return notes


def attach_vision_tower(out: dict[str, torch.Tensor], folder: str | None, width: int) -> tuple[dict, list[str]]:
    """Add the DINOv2 in ``folder`` to ``out`` as ``vision_tower.*``; return its config (a same-width stand-in
    when there is none) and a note for the user."""
    if not folder:
        note = "no --vision-tower: the checkpoint holds no vision_tower.* tensors (features are pre-extracted)"
        return dinov2_config(width), [note]
    vision = read_json(f"{folder}/config.json")
    if vision.get("hidden_size") != width:
        raise BadValueError(
            f"{folder}/config.json: hidden_size {vision.get('hidden_size')} does not match the model's "
            f"vision_feature_dim {width}"
        )
    tower = read_state(folder)
    for key, tensor in tower.items():
        out["vision_tower." + key.removeprefix("vision_tower.")] = tensor.contiguous()
    return vision, [f"attached the vision tower from {folder} ({len(tower)} tensors)"]


def llava_config(config: Any, vision: dict) -> LlavaConfig:
    """The reference ``LlavaConfig`` of a babyllava config, with ``vision`` as its vision config."""
    reference = LlavaConfig(
        text_config=config.text_config.to_dict(),
        vision_config=vision,
        image_token_index=config.image_token_index,
        image_seq_length=config.num_image_tokens,
        projector_hidden_act=config.projector_hidden_act,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )
    reference.architectures = ["LlavaForConditionalGeneration"]
    reference.dtype = config.dtype
    return reference
