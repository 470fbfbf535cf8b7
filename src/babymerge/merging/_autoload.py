"""Start-up hook (loaded by ``babymerge-mergekit.pth``): wait for mergekit or lm-eval, then plug babymerge in.

This file is executed at every interpreter start, so it imports nothing beyond ``os`` and ``sys`` and
only installs a finder that watches a few mergekit and lm-eval modules. When one of them finishes loading, the
matching babymerge registration runs: for mergekit the architectures, the RegMean and Fisher methods, the guarded
``run_merge`` and one-line recipe errors in ``mergekit-yaml``; for lm-eval the ``babyllava`` model type (a lazy
registry entry), the model family registered with transformers when lm-eval's HF models load (so ``--model hf``
needs no ``trust_remote_code``), babymerge's task folder (added to every ``TaskManager`` that indexes lm-eval's own
tasks) and, for an ``lm_eval run`` of babymerge's tasks only, an index of babymerge's folder alone, and a stop
before scoring when another model type is given a task that needs ``babyllava``.
Set ``BABYMERGE_NO_MERGEKIT_HOOK=1`` to disable it.
"""

import os
import sys

# module -> what runs right after it loaded: "module:function" calls, plain "module" imports. mergekit reads
# babyllava configs, so babymerge.modeling (which registers them with transformers) comes first.
_MERGEKIT = "babymerge.modeling babymerge.merging.plugin:"
_ACTIONS = {
    "mergekit.architecture.json_definitions": _MERGEKIT + "register_architectures",
    "mergekit.merge_methods.registry": _MERGEKIT + "register_methods",
    "mergekit.merge": _MERGEKIT + "install_guard",
    "mergekit.scripts.run_yaml": _MERGEKIT + "install_recipe_errors",
    "lm_eval.models": "babymerge.evaluation.plugin:register_model",
    "lm_eval.models.huggingface": "babymerge.modeling",  # babyllava folders load without trust_remote_code
    "lm_eval.tasks.manager": "babymerge.evaluation.plugin:include_tasks",
    "lm_eval.config.evaluate_config": "babymerge.evaluation.plugin:index_requested_only",
    "lm_eval.evaluator": "babymerge.evaluation.plugin:refuse_other_model_types",
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
        import importlib

        for step in self._action.split():
            name, _, function = step.partition(":")
            module = importlib.import_module(name)
            if function:
                getattr(module, function)()


class _MergekitWatcher:  # a meta path finder for mergekit and lm-eval; importlib.abc is not imported (it costs ~10 ms)
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
