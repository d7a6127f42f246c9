"""``cluster.json``: what ``raftka up`` tells other commands about the cluster it runs.

It lives in the cluster's directory and holds the bootstrap addresses and the cluster id (and,
once nodes start, each node's id, roles, addresses, PID and incarnation). A missing or damaged
file reads as empty: commands then ask the user for addresses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raftka.common.files import atomic_write

CLUSTER_FILE = "cluster.json"


def read_cluster_file(directory: Path) -> dict[str, Any]:
    path = directory / CLUSTER_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_cluster_file(directory: Path, data: dict[str, Any]) -> None:
    atomic_write(
        directory / CLUSTER_FILE, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
    )
