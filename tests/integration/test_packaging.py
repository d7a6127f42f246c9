"""The distribution installs the raftka namespace and nothing else."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_wheel_holds_only_the_raftka_namespace_and_works_installed(tmp_path: Path) -> None:
    source = tmp_path / "src"  # build from a copy: setuptools leaves build/ in the source tree
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("common", "controller", "broker", "client", "ops", "proto"):
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = wheels.glob("raftka-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names}
    assert top_level == {
        "raftka",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }
    for package in (
        "common",
        "controller",
        "controller/raft",
        "controller/quorum",
        "broker",
        "client",
        "client/cli",
        "ops",
        "ops/experiments",
        "v1",
    ):
        assert f"raftka/{package}/__init__.py" in names, package
    assert "raftka/v1/controller.proto" in names and "raftka/v1/controller_pb2.pyi" in names
    entry_points = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith("entry_points.txt")))
        .decode()
    )
    assert "raftka = raftka.client.cli:main" in entry_points

    # Installed (not editable) into a fresh target, it imports and runs without the source tree.
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    deps = sysconfig.get_paths()["purelib"]
    env = {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{deps}"}
    probe = (
        "import importlib.util, raftka.client.cli.app as c, raftka.controller.raft.node as n;"
        "import raftka.ops.experiments.runner as r;"
        "assert 'site' in c.__file__ and 'site' in r.__file__, (c.__file__, r.__file__);"
        "assert importlib.util.find_spec('client') is None and importlib.util.find_spec('broker') is None;"
        "print('ok')"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path[:0] = {str(target)!r}, {deps!r}; {probe}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert result.stdout.strip() == "ok", result.stderr
    # And the README's main job runs from that install: a local cluster with the demo (the node
    # processes it starts import the installed package too: no source tree in sight).
    demo = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path[:0] = {str(target)!r}, {deps!r}; "
            "from raftka.client.cli import main; "
            "sys.exit(main(['up', '--demo', '--exit-after-demo', '--dir', 'rk']))",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=240,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "consuming everything back" in demo.stdout and "stopped." in demo.stdout
