"""merging stage: babyllava in mergekit (architecture definitions, RegMean, the guard) and merge recipes.

After ``pip install`` the start-up hook (``babymerge-mergekit.pth`` -> ``_autoload.py``) registers everything as
soon as mergekit is imported, so the unmodified ``mergekit-yaml recipe.yml out/`` merges babyllava checkpoints.
Without the hook, call :func:`register` before using mergekit.
"""

from .checks import MergeInputError, check_tensors_reach_output, read_model
from .plugin import architecture_names, install_guard, register, register_architectures, register_methods
from .recipes import render_recipe, write_recipe

__all__ = [
    "MergeInputError",
    "architecture_names",
    "check_tensors_reach_output",
    "install_guard",
    "read_model",
    "register",
    "register_architectures",
    "register_methods",
    "render_recipe",
    "write_recipe",
]
