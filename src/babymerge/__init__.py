"""babymerge: merge text-only and multimodal BabyLM models with mergekit, evaluate them with lm-eval.

Importing babymerge registers the ``babyllava`` model family with transformers' Auto classes.
"""

from .errors import BabymergeError
from .modeling import BabyLlavaConfig, BabyLlavaForConditionalGeneration

__version__ = "0.1.0"
__all__ = ["BabyLlavaConfig", "BabyLlavaForConditionalGeneration", "BabymergeError", "__version__"]
