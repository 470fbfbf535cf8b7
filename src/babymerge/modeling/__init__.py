"""The babyllava model family, registered with transformers' Auto classes on import."""

from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

from .configuration_babyllava import BabyLlavaConfig
from .modeling_babyllava import BabyLlavaForConditionalGeneration, BabyLlavaModel
from .presets import PRESETS, make_config

AutoConfig.register("babyllava", BabyLlavaConfig, exist_ok=True)
AutoModelForCausalLM.register(BabyLlavaConfig, BabyLlavaForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(BabyLlavaConfig, BabyLlavaForConditionalGeneration, exist_ok=True)
# save_pretrained copies both files into the checkpoint and writes auto_map, for trust_remote_code loading.
BabyLlavaConfig.register_for_auto_class()
BabyLlavaForConditionalGeneration.register_for_auto_class("AutoModelForCausalLM")

__all__ = ["PRESETS", "BabyLlavaConfig", "BabyLlavaForConditionalGeneration", "BabyLlavaModel", "make_config"]
