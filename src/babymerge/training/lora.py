"""Parameter-efficient training through peft: wrap a babyllava model in LoRA, fold an adapter back in."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BabymergeError


def apply_lora(model, config):
    """``model`` wrapped by peft: LoRA on ``config.lora_target_modules``, ``lora_modules_to_save`` trained fully."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        modules_to_save=config.lora_modules_to_save or None,
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as error:
        raise BabymergeError(f"lora_target_modules {config.lora_target_modules}: {error}") from None


def fold_adapter(adapter: str | os.PathLike, out: str | os.PathLike, base: str | os.PathLike | None = None) -> Path:
    """Merge a LoRA adapter folder into its base model (peft's ``merge_and_unload``) and save a complete
    babyllava folder at ``out``. ``base`` defaults to the adapter's ``base_model_name_or_path``."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import babymerge.modeling  # noqa: F401  (registers babyllava with the Auto classes)

    from .init import save_checkpoint
    from .milestones import META_FILE

    adapter, out = Path(adapter), Path(out)
    if not (adapter / "adapter_config.json").is_file():
        raise BabymergeError(f"{adapter}: no adapter_config.json (expected a LoRA checkpoint from `train --lora`)")
    base = Path(base) if base is not None else Path(PeftConfig.from_pretrained(adapter).base_model_name_or_path)
    if not (base / "config.json").is_file():
        raise BabymergeError(f"{base}: base model folder not found (pass --base)")
    model = AutoModelForCausalLM.from_pretrained(base)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    has_tokenizer = (adapter / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(adapter if has_tokenizer else base)
    save_checkpoint(merged, tokenizer, out)
    if (adapter / META_FILE).is_file():
        (out / META_FILE).write_text((adapter / META_FILE).read_text())
    return out
