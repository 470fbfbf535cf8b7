"""Convert checkpoints between babyllava and the authors' reference Llava layout, tensor for tensor.

Reference layout (``model_type`` llava): ``language_model.model.*``, ``language_model.lm_head.*``,
``multi_modal_projector.linear_{1,2}.*`` and optionally ``vision_tower.*`` (the frozen DINOv2), with a
``LlavaConfig`` (llama text config, dinov2 vision config, ``image_seq_length`` = image tokens). transformers 5's
own Llava names (``model.language_model.*``, ``model.multi_modal_projector.*``, ``model.vision_tower.*``) are
read as well. Weights are read and written with safetensors directly, so nothing is re-initialised: every shared
tensor is copied bit for bit. The reference layout has no place for the black image's features, so they travel
beside it as ``black_image.safetensors`` (feature-file layout with no images).

Imports json, torch, safetensors and transformers (the ``babyllava`` model type must be registered, which
importing ``babymerge.modeling`` does). Functions raise ``BadValueError`` (a ``ValueError``) with one line naming
the tensor or file.
"""

from __future__ import annotations

import json

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM, Dinov2Config, LlavaConfig

from ..errors import BadValueError

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


def _read_safetensors(path: str) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except (SafetensorError, OSError) as error:
        raise BadValueError(f"{path}: not a readable safetensors file ({' '.join(str(error).split())})") from None


def read_weights(folder: str) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder (``model.safetensors`` or a sharded index), as stored."""
    single = f"{folder}/model.safetensors"
    if _exists(single):
        return _read_safetensors(single)
    index = f"{folder}/model.safetensors.index.json"
    if not _exists(index):
        raise BadValueError(f"{folder}: no model.safetensors or model.safetensors.index.json")
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(set(read_json(index)["weight_map"].values())):
        tensors.update(_read_safetensors(f"{folder}/{shard}"))
    return tensors


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
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, tensor in tensors.items():
        if key not in expected:
            raise BadValueError(f"{source}: unexpected tensor {names.get(key, key)!r} for this config")
        if tuple(tensor.shape) != expected[key]:
            raise BadValueError(
                f"{source}: tensor {names.get(key, key)!r} has shape {tuple(tensor.shape)}; "
                f"expected {expected[key]} from the config"
            )
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise BadValueError(f"{source}: missing tensor {missing[0]!r} ({len(missing)} missing)")


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
    notes: list[str] = []
    config = read_json(f"{src}/config.json")
    if config.get("model_type") != "llava":
        raise BadValueError(f"{src}/config.json: model_type is {config.get('model_type')!r}; expected 'llava'")
    text = dict(config.get("text_config") or {})
    if text.get("model_type", "llama") != "llama":
        found = text.get("model_type")
        raise BadValueError(f"{src}/config.json: text_config.model_type is {found!r}; expected 'llama'")
    weights = read_weights(src)
    renamed: dict[str, torch.Tensor] = {}
    names: dict[str, str] = {}
    dropped = 0
    for key, tensor in weights.items():
        new = reference_to_babyllava_name(key)
        if new is None:
            dropped += 1
        elif new in renamed:
            raise BadValueError(f"{src}: tensor {key!r} duplicates {names[new]!r}")
        else:
            renamed[new], names[new] = tensor, key
    if dropped:
        notes.append(f"dropped the vision tower ({dropped} tensors): babyllava takes pre-extracted features")
    if "lm_head.weight" not in renamed and text.get("tie_word_embeddings", config.get("tie_word_embeddings")):
        renamed["lm_head.weight"] = renamed["model.language_model.embed_tokens.weight"].clone()
        notes.append("lm_head.weight copied from the tied input embeddings")
    proj = renamed.get("model.multi_modal_projector.linear_1.weight")
    if proj is None:
        raise BadValueError(f"{src}: missing tensor 'multi_modal_projector.linear_1.weight'")
    black_path = black_features or (f"{src}/{BLACK_FILE}" if _exists(f"{src}/{BLACK_FILE}") else None)
    black_meta: dict[str, str] = {}
    tokens = int(config.get("image_seq_length") or 1)
    if black_path:
        black = _read_safetensors(black_path).get("black")
        if black is None:
            raise BadValueError(f"{black_path}: no 'black' tensor (expected a feature file)")
        with safe_open(black_path, "pt") as handle:
            black_meta = dict(handle.metadata() or {})
        black = black.reshape(-1, black.shape[-1])
        if tuple(black.shape) != (tokens, proj.shape[1]):
            raise BadValueError(
                f"{black_path}: black has shape {tuple(black.shape)}; expected ({tokens}, {proj.shape[1]}) "
                "(image_seq_length, projector input)"
            )
        notes.append(f"black image features from {black_path}")
    else:
        black = torch.zeros(tokens, proj.shape[1], dtype=proj.dtype)
        notes.append("warning: no --black-features given: the black image's features are ZEROS")
    renamed[BLACK_KEY] = black.to(proj.dtype)
    pooling = black_meta.get("pooling") or ("mean" if tokens == 1 else "patches")
    grid = black_meta.get("grid_size", "")
    vision = config.get("vision_config") or {}
    baby = AutoConfig.for_model(
        "babyllava",
        text_config=text,
        vision_feature_dim=int(proj.shape[1]),
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
    _check_tokenizer(src, baby.image_token_index)
    model = AutoModelForCausalLM.from_config(baby)
    check_against(model, renamed, src, names)
    model.load_state_dict(renamed, strict=True, assign=True)
    model.save_pretrained(dst)
    copy_files(src, dst)
    return notes


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
    notes: list[str] = []
    model_type = read_json(f"{src}/config.json").get("model_type")
    if model_type != "babyllava":
        raise BadValueError(f"{src}/config.json: model_type is {model_type!r}; expected 'babyllava'")
    config = AutoConfig.from_pretrained(src)
    weights = read_weights(src)
    check_against(AutoModelForCausalLM.from_config(config), weights, src, {})
    out: dict[str, torch.Tensor] = {}
    for key, tensor in weights.items():
        name = babyllava_to_reference_name(key)
        if name is not None:
            out[name] = tensor.contiguous()
    if vision_tower:
        vision = read_json(f"{vision_tower}/config.json")
        if vision.get("hidden_size") != config.vision_feature_dim:
            raise BadValueError(
                f"{vision_tower}/config.json: hidden_size {vision.get('hidden_size')} does not match the model's "
                f"vision_feature_dim {config.vision_feature_dim}"
            )
        tower = read_weights(vision_tower)
        for key, tensor in tower.items():
            out["vision_tower." + key.removeprefix("vision_tower.")] = tensor.contiguous()
        notes.append(f"attached the vision tower from {vision_tower} ({len(tower)} tensors)")
    else:
        vision = dinov2_config(config.vision_feature_dim)
        notes.append("no --vision-tower: the checkpoint holds no vision_tower.* tensors (features are pre-extracted)")
    if config.num_image_tokens != 1:
        notes.append(f"image_seq_length is {config.num_image_tokens}; the authors' code expects 1 pooled token")
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
    reference.save_pretrained(dst)
    save_file(out, f"{dst}/model.safetensors", metadata={"format": "pt"})
    black = weights[BLACK_KEY].float().contiguous()
    meta = {
        "image_ids": "[]",
        "backbone": config.vision_backbone or "",
        "pooling": config.image_pooling,
        "grid_size": str(config.image_grid_size or ""),
    }
    save_file({"features": black.new_zeros(0, *black.shape), "black": black}, f"{dst}/{BLACK_FILE}", metadata=meta)
    notes.append(f"the black image's features are in {BLACK_FILE} beside the weights")
    copy_files(src, dst, COPIED_FILES + ("generation_config.json",))
    return notes
