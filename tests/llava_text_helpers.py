"""Tiny stock transformers LLaVA checkpoints (CLIP + Llama, SigLIP + Qwen2, DINOv2 + Mistral) and text-only LMs."""

from __future__ import annotations

from pathlib import Path

import torch

LM = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
LM_KV = {"num_key_value_heads": 2}


def text_config(kind: str, vocab_size: int, **overrides):
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    cls = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config}[kind]
    return cls(vocab_size=vocab_size, **{**LM, **LM_KV, **overrides})


def vision_config(kind: str):
    from transformers import CLIPVisionConfig, Dinov2Config, SiglipVisionConfig

    small = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
    if kind == "clip":
        return CLIPVisionConfig(image_size=32, patch_size=8, **small)
    if kind == "siglip":
        return SiglipVisionConfig(image_size=32, patch_size=8, **small)
    return Dinov2Config(image_size=28, patch_size=14, **small)


def save_llava(folder: Path, tokenizer, lm: str, tower: str, seed: int, **lm_overrides) -> Path:
    """A ``LlavaForConditionalGeneration`` folder as transformers saves it, with processor and tokenizer files."""
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    torch.manual_seed(seed)
    config = LlavaConfig(
        vision_config=vision_config(tower),
        text_config=text_config(lm, len(tokenizer), **lm_overrides),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
    )
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    size = config.vision_config.image_size
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
        tokenizer=tokenizer,
        patch_size=config.vision_config.patch_size,
        num_additional_image_tokens=0 if tower == "siglip" else 1,  # CLIP and DINOv2 add a CLS token
        vision_feature_select_strategy=config.vision_feature_select_strategy,
    )
    processor.save_pretrained(folder)
    return folder


def save_text_lm(folder: Path, tokenizer, lm: str, seed: int, **overrides) -> Path:
    """A text-only causal LM (``LlamaForCausalLM``, ``MistralForCausalLM``, ``Qwen2ForCausalLM``), same tokenizer."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(text_config(lm, len(tokenizer), **overrides)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def word_tokenizer(words: list[str], extra: tuple[str, ...] = ()):
    """A whitespace word-level tokenizer with ``<s> </s> <pad> <unk> <image>`` (trained in memory, no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<s>", "</s>", "<image>", *extra]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator([" ".join(words)], trainers.WordLevelTrainer(special_tokens=specials))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )


def save_llama_like(babyllava: Path, folder: Path, seed: int, **overrides) -> Path:
    """A plain ``LlamaForCausalLM`` of a babyllava's language-model shape, with the babyllava's tokenizer files."""
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    torch.manual_seed(seed)
    text_config = AutoConfig.from_pretrained(babyllava, trust_remote_code=True).get_text_config()
    LlamaForCausalLM(type(text_config).from_dict({**text_config.to_dict(), **overrides})).save_pretrained(folder)
    AutoTokenizer.from_pretrained(babyllava).save_pretrained(folder)
    return folder
