"""The one-way layers (pyproject.toml's import contracts) hold, and the check can fail.

``lint-imports`` runs over the real tree; then, for each layer rule, over a copy of one package
with a forbidden import planted in it, which must break exactly that rule.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {
    "v1": ROOT / "proto" / "raftka" / "v1",
    "common": ROOT / "common",
    "controller": ROOT / "controller",
    "broker": ROOT / "broker",
    "client": ROOT / "client",
    "ops": ROOT / "ops",
}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_its_layers() -> None:
    result = _lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("package", "module", "planted", "broken"),
    [
        ("common", "planted.py", "import raftka.broker.server", "common imports none of"),
        ("controller", "planted.py", "import raftka.client.admin", "controller imports neither"),
        ("broker", "planted.py", "import raftka.controller.raft", "broker imports neither"),
        ("client", "producer/planted.py", "import raftka.ops.node", "the client library"),
        ("client", "consumer/planted.py", "import raftka.client.cli.app", "inside client/"),
        ("ops", "planted.py", "import raftka.client.cli", "ops imports nothing of"),
    ],
)
def test_a_planted_forbidden_import_breaks_its_rule(
    tmp_path: Path, package: str, module: str, planted: str, broken: str
) -> None:
    tree = tmp_path / "raftka"
    tree.mkdir()
    for name, folder in FOLDERS.items():
        if name == package:
            shutil.copytree(folder, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (tree / name).symlink_to(folder)
    (tree / package / module).write_text(f"{planted}  # planted by the test\n")
    result = _lint(pythonpath=tmp_path)
    assert result.returncode != 0, result.stdout
    broken_section = result.stdout.split("Broken contracts", 1)[-1]
    assert broken in broken_section, result.stdout
    assert "planted" in broken_section
