"""Start-up hook (loaded by ``babymerge-mergekit.pth``): wait for mergekit, then plug babymerge into it.

This file is executed at every interpreter start, so it imports nothing beyond ``os`` and ``sys`` and
only installs a finder that watches four mergekit modules. When one of them finishes loading, the matching
babymerge registration runs (architectures, the RegMean method, the guarded ``run_merge``, one-line recipe
errors in ``mergekit-yaml``).
Set ``BABYMERGE_NO_MERGEKIT_HOOK=1`` to disable it.
"""

import os
import sys

_ACTIONS = {
    "mergekit.architecture.json_definitions": "register_architectures",
    "mergekit.merge_methods.registry": "register_methods",
    "mergekit.merge": "install_guard",
    "mergekit.scripts.run_yaml": "install_recipe_errors",
}


class _AfterExec:
    """Loader proxy that runs a babymerge action after the real loader executed the module."""

    def __init__(self, loader, action: str):
        self._loader = loader
        self._action = action

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        from babymerge.merging import plugin

        getattr(plugin, self._action)()


class _MergekitWatcher:  # a meta path finder; importlib.abc is not imported (it costs ~10 ms)
    def find_spec(self, fullname, path, target=None):
        action = _ACTIONS.get(fullname)
        if action is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _AfterExec(spec.loader, action)
                return spec
        return None


if not os.environ.get("BABYMERGE_NO_MERGEKIT_HOOK") and not any(
    isinstance(f, _MergekitWatcher) or type(f).__name__ == "_MergekitWatcher" for f in sys.meta_path
):
    sys.meta_path.insert(0, _MergekitWatcher())
