"""babymerge: merge text-only and multimodal BabyLM models with mergekit, evaluate them with lm-eval.

``import babymerge`` is light (the command line starts fast); ``babymerge.modeling`` (imported on first use of
``babymerge.BabyLlavaConfig`` / ``BabyLlavaForConditionalGeneration``) registers the ``babyllava`` model
family with transformers' Auto classes.
"""

from .errors import BabymergeError

__version__ = "0.1.0"
__all__ = ["BabyLlavaConfig", "BabyLlavaForConditionalGeneration", "BabymergeError", "__version__"]


def __getattr__(name: str):
    if name in ("BabyLlavaConfig", "BabyLlavaForConditionalGeneration"):
        from . import modeling

        return getattr(modeling, name)
    raise AttributeError(f"module 'babymerge' has no attribute {name!r}")
