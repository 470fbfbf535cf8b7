"""Plug babymerge into mergekit: architecture definitions, the RegMean and Fisher methods, the guarded ``run_merge``.

mergekit 0.1.5 has no plugin entry points. The start-up hook (``_autoload.py``) calls these functions as soon
as the matching mergekit module has loaded; code that imports mergekit without the hook can call
:func:`register` itself. Every function is idempotent.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from importlib import import_module, resources

ARCHITECTURE_FILES = ("babyllava.json", "llava_reference.json")


@cache
def architecture_names() -> frozenset[str]:
    """The ``config.architectures[0]`` values babymerge defines (read from the JSON files, no mergekit import)."""
    names: set[str] = set()
    for name in ARCHITECTURE_FILES:
        names.update(json.loads(_architecture_text(name))["architectures"])
    return frozenset(names)


def _architecture_text(file_name: str) -> str:
    return resources.files("babymerge.merging").joinpath("architectures", file_name).read_text()


def register_architectures() -> None:
    """Add babymerge's architecture definitions to mergekit's lookup tables (``NAME_TO_ARCH``)."""
    json_definitions = import_module("mergekit.architecture.json_definitions")

    for file_name in ARCHITECTURE_FILES:
        arch = json_definitions._load_architecture_json(_architecture_text(file_name))
        for arch_name in arch.architectures:
            known = json_definitions.NAME_TO_ARCH.setdefault(arch_name, [])
            if not any(a.expected_model_type == arch.expected_model_type for a in known):
                known.append(arch)
                json_definitions.JSON_ARCHITECTURES.append(arch)


def register_methods() -> None:
    """Register the merge methods mergekit lacks (``regmean``, ``fisher``) in mergekit's method registry."""
    for module, name in (("regmean", "regmean_merge"), ("fisher", "fisher_merge")):
        partial = sys.modules.get(f"{__package__}.{module}")
        if partial is not None and not hasattr(partial, name):
            return  # that module is importing mergekit right now; it calls this function again when done
    registry = import_module("mergekit.merge_methods.registry")

    from .fisher import fisher_merge
    from .regmean import regmean_merge

    for method in (regmean_merge, fisher_merge):
        if method.spec.name not in {m.spec.name for m in registry.registered_methods()}:
            registry.register(method)


def install_guard() -> None:
    """Replace ``mergekit.merge.run_merge`` by the guarded version (checks, atomic output, complete folder)."""
    from .guarded import guarded_run_merge

    merge = import_module("mergekit.merge")  # sys.modules entry: works while mergekit is still importing
    if getattr(merge.run_merge, "__wrapped__", None) is None:
        original = merge.run_merge
        guarded_run_merge.__wrapped__ = original
        merge.run_merge = guarded_run_merge
        # Modules that imported the name before the guard was installed.
        for module_name in ("mergekit.scripts.run_yaml", "mergekit.scripts.multimerge"):
            module = sys.modules.get(module_name)
            if module is not None and getattr(module, "run_merge", None) is original:
                module.run_merge = guarded_run_merge


def install_recipe_errors() -> None:
    """``mergekit-yaml`` reports an invalid recipe (YAML or schema) in one ``Error:`` line, not a traceback."""
    run_yaml = import_module("mergekit.scripts.run_yaml")
    original = run_yaml.main.callback
    if getattr(original, "babymerge_recipe_errors", False):
        return

    def callback(*args, **kwargs):
        import yaml

        from .checks import MergeInputError, validate_recipe

        recipe = kwargs.get("config_file")
        try:
            with open(recipe, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except OSError as error:
            raise MergeInputError(f"{recipe}: cannot read recipe ({error.strerror})") from None
        except yaml.YAMLError as error:
            raise MergeInputError(f"{recipe}: unreadable YAML ({' '.join(str(error).split())})") from None
        validate_recipe(data, recipe)
        return original(*args, **kwargs)

    callback.babymerge_recipe_errors = True
    run_yaml.main.callback = callback


def register() -> None:
    """Everything at once: architectures, methods and the guard."""
    register_architectures()
    register_methods()
    install_guard()
    install_recipe_errors()
