"""Build step that ships ``babymerge-mergekit.pth`` into site-packages (wheel and editable installs).

The .pth line loads ``merging/_autoload.py`` at interpreter start-up; that file only installs an import
watcher, so the unmodified ``mergekit-yaml`` picks up babymerge's architectures, RegMean and the guard, and
plain ``lm_eval`` the ``babyllava`` model type and babymerge's tasks.
Referenced from pyproject.toml's ``[tool.setuptools.cmdclass]``; setuptools loads this file by path.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools.command.build_py import build_py

PTH_NAME = "babymerge-mergekit.pth"
PTH_SOURCE = Path(__file__).with_name(PTH_NAME)


class BuildPyWithStartupHook(build_py):
    """``build_py`` that also places the start-up .pth at the root of the installed tree."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            # Editable wheels are assembled from the unpacked-wheel folder that ``install`` points at.
            target = Path(self.get_finalized_command("install").install_lib)
        else:
            target = Path(self.build_lib)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PTH_SOURCE, target / PTH_NAME)
        self._startup_hook = str(target / PTH_NAME)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        hook = getattr(self, "_startup_hook", None)
        return outputs + [hook] if hook and not getattr(self, "editable_mode", False) else outputs
