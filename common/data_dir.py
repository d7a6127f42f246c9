"""A node's data directory: formatting, identity checks and layout.

``raftka format`` writes ``meta.properties`` (cluster id, node id); a node refuses to start on
a directory that is missing, unformatted, or formatted for another node or cluster, because
joining a cluster with the wrong identity could lose committed data.

Layout::

    <data_dir>/meta.properties
    <data_dir>/__cluster_metadata-0/            controller role: the Raft log, quorum-state,
                                                <index>-<term>.checkpoint snapshots
    <data_dir>/logs/<topic>-<partition>/        broker role: partition logs
"""

from __future__ import annotations

import base64
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from raftka.common.errors import DataDirectoryError
from raftka.common.files import atomic_write

META_FILE = "meta.properties"
METADATA_LOG_DIR = "__cluster_metadata-0"
PARTITION_LOGS_DIR = "logs"
FORMAT_VERSION = 1
_CLUSTER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class DataDirIdentity:
    cluster_id: str
    node_id: int


def new_cluster_id() -> str:
    """A random cluster id in Kafka's form: 22 characters of URL-safe base64, never starting
    with ``-`` (such an id would read as an option: ``raftka format --cluster-id -x...``).
    Like Kafka's Uuid.randomUuid, it draws again instead: one draw in 64 starts with ``-``."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def format_data_dir(
    data_dir: Path, cluster_id: str, node_id: int, *, exist_ok: bool = False
) -> None:
    """Write meta.properties. Refuses a directory formatted for another identity, and a
    cluster id that is not 1-64 characters of A-Z, a-z, 0-9, '_' and '-'."""
    if not _CLUSTER_ID.fullmatch(cluster_id):
        raise DataDirectoryError(
            f"cluster id {cluster_id!r} is not valid: use 1-64 characters of A-Z, a-z, 0-9, "
            "'_' and '-' (or leave it out for a new random one)"
        )
    meta = data_dir / META_FILE
    if meta.exists():
        found = read_identity(data_dir)
        if found == DataDirIdentity(cluster_id, node_id) and exist_ok:
            return
        raise DataDirectoryError(
            f"{data_dir} is already formatted (cluster {found.cluster_id}, node {found.node_id}); "
            "use an empty directory, or delete it if its data is not needed"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    text = f"version={FORMAT_VERSION}\ncluster.id={cluster_id}\nnode.id={node_id}\n"
    atomic_write(meta, text.encode())


def read_identity(data_dir: Path) -> DataDirIdentity:
    meta = data_dir / META_FILE
    if not data_dir.is_dir():
        raise DataDirectoryError(
            f"data directory {data_dir} does not exist: run `raftka format --config <file>` first"
        )
    if not meta.is_file():
        raise DataDirectoryError(
            f"data directory {data_dir} is not formatted (no {META_FILE}): "
            "run `raftka format --config <file>` first"
        )
    damaged = (
        f"{meta} is damaged: it must hold the lines version=, cluster.id= and node.id= that "
        "`raftka format` wrote. Restore it from a backup, or, if this node's data is not "
        "needed, empty the directory and format it again (it will catch up from its replicas)"
    )
    try:
        text = meta.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataDirectoryError(f"{damaged} ({e})") from None
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    try:
        version = int(values["version"])
        identity = DataDirIdentity(values["cluster.id"], int(values["node.id"]))
    except (KeyError, ValueError):
        raise DataDirectoryError(damaged) from None
    if not _CLUSTER_ID.fullmatch(identity.cluster_id) or identity.node_id < 0:
        raise DataDirectoryError(
            f"{damaged} (found cluster.id {identity.cluster_id!r}, node.id {identity.node_id})"
        )
    if version != FORMAT_VERSION:
        raise DataDirectoryError(
            f"{meta} has format version {version}; this release reads {FORMAT_VERSION}"
        )
    return identity


def check_data_dir(data_dir: Path, node_id: int) -> DataDirIdentity:
    """Return the directory's identity, or raise if it is not this node's."""
    identity = read_identity(data_dir)
    if identity.node_id != node_id:
        raise DataDirectoryError(
            f"data directory {data_dir} belongs to node {identity.node_id}, not node {node_id}: "
            "check data_dir and node_id in the config"
        )
    if not os.access(data_dir, os.W_OK):
        raise DataDirectoryError(f"data directory {data_dir} is not writable by this user")
    return identity
