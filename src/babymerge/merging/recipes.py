"""Merge recipes with placeholder paths (``merge_recipes/*.yml``) filled in with real absolute paths.

Recipes name their models ``/path/to/text_model``, ``/path/to/multimodal_model``, ``/path/to/init_model`` and
RegMean's Gram files ``/path/to/grams/text.safetensors``, ``/path/to/grams/multimodal.safetensors``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import BabymergeError
from ..io import atomic_file

PLACEHOLDER = re.compile(r"/path/to/([\w./-]+)")


def render_recipe(text: str, paths: dict[str, str | os.PathLike]) -> str:
    """Replace every ``/path/to/NAME`` by the absolute form of ``paths[NAME]``; fail on unknown names."""

    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name not in paths:
            given = ", ".join(paths) or "none"
            raise BabymergeError(f"recipe placeholder /path/to/{name} has no path (--model {name}=PATH; got {given})")
        return str(Path(paths[name]).resolve())

    return PLACEHOLDER.sub(substitute, text)


def check_all_used(recipe: Path, text: str, paths: dict[str, str | os.PathLike]) -> None:
    """Every given NAME is a placeholder of the recipe (a misspelt or stray ``--model`` is not ignored)."""
    used = set(PLACEHOLDER.findall(text))
    unused = sorted(set(paths) - used)
    if unused:
        raise BabymergeError(
            f"--model {unused[0]}: {recipe} has no placeholder /path/to/{unused[0]} "
            f"(its placeholders: {', '.join(sorted(used)) or 'none'})"
        )


def write_recipe(recipe: str | os.PathLike, out: str | os.PathLike, paths: dict[str, str | os.PathLike]) -> Path:
    """Render the recipe file ``recipe`` into ``out`` (atomically)."""
    text = render_recipe(Path(recipe).read_text(), paths)
    with atomic_file(out) as tmp:
        tmp.write_text(text)
    return Path(out)


def merge_recipe(
    recipe: str | os.PathLike,
    out: str | os.PathLike,
    paths: dict[str, str | os.PathLike] | None = None,
    *,
    random_seed: int | None = None,
    quiet: bool = False,
    out_shard_size: int | None = None,
) -> Path:
    """Fill a recipe's placeholders and run it with mergekit's (guarded) ``run_merge`` in this process
    (``out_shard_size``: parameters per output shard, mergekit's default when None)."""
    import yaml
    from mergekit.options import MergeOptions

    from .checks import validate_recipe
    from .plugin import register

    recipe = Path(recipe)
    if not recipe.is_file():
        raise BabymergeError(f"{recipe}: recipe not found")
    check_all_used(recipe, recipe.read_text(), paths or {})
    text = render_recipe(recipe.read_text(), paths or {})
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BabymergeError(f"{recipe}: unreadable YAML ({' '.join(str(error).split())})") from error
    config = validate_recipe(data, recipe)
    register()
    from mergekit.merge import run_merge

    sharding = {} if out_shard_size is None else {"out_shard_size": out_shard_size}
    options = MergeOptions(quiet=quiet, random_seed=random_seed, **sharding)
    run_merge(config, str(out), options=options, config_source=text)
    return Path(out)
