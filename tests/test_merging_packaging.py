"""A regular (non-editable) wheel carries the start-up hook at its root, so ``pip install .`` installs it, and the
task YAMLs of ``evaluation_tasks/`` as ``babymerge/evaluation_tasks/``."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from helpers import REPO, source_tree


def test_wheel_ships_the_pth_at_site_packages_root(tmp_path):
    source = source_tree(tmp_path / "src_copy")
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(tmp_path),
        ".",
    ]
    subprocess.run(command, cwd=source, check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("babymerge-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "babymerge-mergekit.pth" in names
        assert {"babymerge/merging/_autoload.py", "babymerge/merging/architectures/babyllava.json"} <= names
        tasks = {f"babymerge/evaluation_tasks/{p.name}" for p in (REPO / "evaluation_tasks").glob("*.y*ml")}
        assert tasks and tasks | {"babymerge/evaluation_tasks/utils.py"} <= names
        pth = archive.read("babymerge-mergekit.pth").decode()
    assert pth == (REPO / "src/babymerge/merging/babymerge-mergekit.pth").read_text()
    assert pth.startswith("import ") and pth.count("\n") == 1  # site.py runs one-line import statements only
