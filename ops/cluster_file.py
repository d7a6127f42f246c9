"""``cluster.json``: what ``raftka up`` tells other commands about the cluster it runs.

It lives in the cluster's directory and holds the bootstrap addresses, the cluster id, each
node's Prometheus endpoint, the
supervisor's PID and, for every node, its id, roles, addresses, config and log files, PID (with
the process's start time, so a reused PID is never taken for the node) and incarnation (1 at
the first start, +1 at every restart). Only the supervisor writes it, atomically, whenever a
node starts, restarts or exits; ``raftka node`` and the client commands read it. A missing or
damaged file reads as empty: commands then ask the user for addresses.

``tls`` is there only for a TLS cluster (``raftka up --tls``): the CA that signed the nodes'
certificates and the admin's client certificate and key (``User:admin``, a super user), which
the client commands use to reach the cluster's addresses (see raftka.client.cli.auth_options).

    {
      "bootstrap_controller": "127.0.0.1:40001",
      "bootstrap_servers": "127.0.0.1:40002,127.0.0.1:40003",
      "cluster_id": "...",
      "metrics": {"1": "http://127.0.0.1:40101/metrics", ...},
      "tls": {"ca_file": "/abs/tls/ca.crt", "cert_file": "/abs/tls/admin.crt",
              "key_file": "/abs/tls/admin.key"},
      "supervisor": {"pid": 4100, "started": 912345},
      "nodes": [
        {"id": 2, "roles": ["broker"], "addresses": {"broker": "127.0.0.1:40002"},
         "config": "/abs/broker-2/node.toml", "log": "/abs/broker-2/server.log",
         "pid": 4123, "started": 912399, "incarnation": 1, "exit": null},
        ...
      ]
    }
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

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


@dataclass(frozen=True, slots=True)
class ProcessEntry:
    """A process as recorded: its PID and when it started (/proc clock ticks since boot)."""

    pid: int
    started: int | None

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "started": self.started}

    @classmethod
    def from_json(cls, data: object) -> ProcessEntry | None:
        if not isinstance(data, Mapping):
            return None
        pid, started = data.get("pid"), data.get("started")
        if not _is_int(pid) or not (started is None or _is_int(started)):
            return None
        return cls(pid, started)


@dataclass(frozen=True, slots=True)
class NodeEntry:
    """One node of the local cluster, as ``cluster.json`` records it."""

    node_id: int
    roles: tuple[str, ...]
    addresses: Mapping[str, str] = field(hash=False)
    """Listen address per role, e.g. ``{"broker": "127.0.0.1:40002"}``."""
    config: str
    """Absolute path of the node's config file (its process runs ``server --config`` it)."""
    log: str
    process: ProcessEntry | None
    """The latest incarnation's process; None before the first start."""
    incarnation: int
    exit: str | None = None
    """How the latest incarnation ended (``killed by signal 9 (SIGKILL)``), once the
    supervisor saw it; None while it runs."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.node_id,
            "roles": list(self.roles),
            "addresses": dict(self.addresses),
            "config": self.config,
            "log": self.log,
            "pid": self.process.pid if self.process else None,
            "started": self.process.started if self.process else None,
            "incarnation": self.incarnation,
            "exit": self.exit,
        }

    @classmethod
    def from_json(cls, data: object) -> NodeEntry | None:
        """None for an entry that is not well formed (a hand-edited or foreign file)."""
        if not isinstance(data, Mapping):
            return None
        node_id, roles, addresses = data.get("id"), data.get("roles"), data.get("addresses")
        config, log, incarnation = data.get("config"), data.get("log"), data.get("incarnation")
        exit_ = data.get("exit")
        if not (
            _is_int(node_id)
            and isinstance(roles, list)
            and all(isinstance(r, str) for r in roles)
            and isinstance(addresses, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in addresses.items())
            and isinstance(config, str)
            and isinstance(log, str)
            and _is_int(incarnation)
            and (exit_ is None or isinstance(exit_, str))
        ):
            return None
        process = ProcessEntry.from_json(data) if data.get("pid") is not None else None
        if data.get("pid") is not None and process is None:
            return None
        return cls(node_id, tuple(roles), dict(addresses), config, log, process, incarnation, exit_)


def read_nodes(directory: Path) -> list[NodeEntry]:
    """The nodes ``cluster.json`` lists, by id; malformed entries are left out."""
    raw = read_cluster_file(directory).get("nodes")
    entries = [NodeEntry.from_json(n) for n in raw] if isinstance(raw, list) else []
    return sorted((e for e in entries if e is not None), key=lambda e: e.node_id)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The files a client needs to reach a TLS local cluster as its admin."""

    ca_file: str
    cert_file: str
    key_file: str

    def to_json(self) -> dict[str, str]:
        return {"ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}

    @classmethod
    def from_json(cls, data: object) -> TlsFiles | None:
        if not isinstance(data, Mapping):
            return None
        values = [data.get(k) for k in ("ca_file", "cert_file", "key_file")]
        if not all(isinstance(v, str) and v for v in values):
            return None
        ca, cert, key = values
        return cls(str(ca), str(cert), str(key))


def read_tls_files(directory: Path) -> TlsFiles | None:
    """The TLS files of the cluster in ``directory``; None for a plaintext cluster (or no
    cluster, or a damaged entry)."""
    return TlsFiles.from_json(read_cluster_file(directory).get("tls"))


def cluster_addresses(directory: Path) -> frozenset[str]:
    """Every address the cluster file names (bootstrap lists and nodes' listen addresses)."""
    data = read_cluster_file(directory)
    found: set[str] = set()
    for key in ("bootstrap_controller", "bootstrap_servers"):
        value = data.get(key)
        if isinstance(value, str):
            found.update(a.strip() for a in value.split(",") if a.strip())
    for entry in read_nodes(directory):
        found.update(entry.addresses.values())
    return frozenset(found)


def read_supervisor(directory: Path) -> ProcessEntry | None:
    return ProcessEntry.from_json(read_cluster_file(directory).get("supervisor"))


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
