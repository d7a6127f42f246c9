"""Reading deploy/: the Kubernetes manifests as documents, and the entrypoint's rendering."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"

KUBERNETES_VERSION = "1.30.0"
"""The Kubernetes API the manifests are checked against (the oldest release they target)."""

Doc = dict[str, Any]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def documents() -> list[tuple[Path, Doc]]:
    docs = []
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path, doc))
    return docs


def find(kind: str, name: str) -> Doc:
    for _path, doc in documents():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name} under {K8S}")


def env_of(container: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def render(
    template: str,
    pod: str,
    env: Mapping[str, str],
    tmp_path: Path,
    args: Sequence[str] = ("render",),
) -> subprocess.CompletedProcess[str]:
    """Run the image's entrypoint with ``args`` (by default ``render``: print the config) as
    a pod named ``pod`` would."""
    tpl = tmp_path / "node.toml.tmpl"
    tpl.write_text(template)
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        env={
            "PATH": os.environ["PATH"],
            "POD_NAME": pod,
            "RAFTKA_CONFIG_TEMPLATE": str(tpl),
            "RAFTKA_CONFIG": str(tmp_path / "run" / "node.toml"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
