"""A local cluster of real node processes on 127.0.0.1, under one supervisor.

Used by ``raftka up`` and by the integration tests and benchmarks, so all of them start, kill,
pause and restart nodes the same way. Every node is a separate ``raftka server`` process with
its own config file and data directory under ``base_dir``; its log goes to
``base_dir/node-<id>/server.log``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftka.common.data_dir import format_data_dir, new_cluster_id
from raftka.common.security.tls import ChannelSecurity
from raftka.ops.cluster_file import TlsFiles
from raftka.ops.power_loss import CutTail, cut_unflushed_tails
from raftka.ops.proc import start_time
from raftka.ops.tls_certs import LOCAL_HOSTS, CertificateAuthority

ADMIN_CN = "admin"
"""The common name of the client certificate ``tls`` clusters make (``User:admin``)."""

TLS_NODE_SETTINGS: dict[str, object] = {
    # gRPC Python cannot ask for a client certificate without requiring one (see
    # raftka.common.security.tls), and nodes must present theirs: required.
    "client_auth": "required",
    "principal_mapping_rules": "RULE:^CN=([^,]+).*$/$1/,DEFAULT",
    "authorizer_enable": True,
}
"""The ``[security]`` keys of every node of a ``tls`` cluster (plus files and super users)."""

SPLIT_LISTENER_SETTINGS: dict[str, object] = {
    # Clients may come with a bearer token only; nodes, on their own listeners, with their
    # certificates (raftka.common.security.listeners).
    "client_auth": "none",
    "internal_client_auth": "required",
}
"""The ``[security]`` keys a ``tls`` cluster with ``split_listeners`` adds."""


def tls_hosts(host: str) -> tuple[str, ...]:
    """The SANs of a node certificate for a node listening on ``host``."""
    return tuple(dict.fromkeys((host, *LOCAL_HOSTS)))


_PORTS_GIVEN: set[tuple[str, int]] = set()
"""Ports this process handed out: the kernel may offer a port again once its probe socket is
closed, and two nodes of one cluster on the same port cannot both start (seen in CI: two
controllers given one port, the quorum never formed)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now and never handed out before by this process."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if (host, port) not in _PORTS_GIVEN:
            _PORTS_GIVEN.add((host, port))
            return port
    raise RuntimeError(f"no port on {host} that was not handed out already, in 100 tries")


COMBINED = "combined"
"""The role of a node that runs both the controller and the broker role."""


@dataclass
class NodeProcess:
    node_id: int
    host: str
    port: int
    directory: Path
    role: str = "controller"
    process: subprocess.Popen[bytes] | None = None
    incarnation: int = 0
    """How many times the node was started (1 after the first start)."""
    started: int | None = None
    """When the latest process started (/proc clock ticks since boot), to tell it from a
    later process that reuses its PID."""
    metrics_port: int | None = None
    """The port of its Prometheus endpoint (``[metrics] listen``), when metrics are on."""
    client_port: int | None = None
    """A controller's separate listener for admin clients (``controller.client_listen``)."""
    internal_port: int | None = None
    """A broker's separate listener for other brokers (``broker.internal_listen``)."""
    kafka_port: int | None = None
    """A broker's Kafka wire-protocol listener (``broker.kafka_listen``)."""
    broker_port: int | None = None
    """A combined node's broker listener (its ``port`` is the controller's)."""

    @property
    def roles(self) -> tuple[str, ...]:
        return ("controller", "broker") if self.role == COMBINED else (self.role,)

    @property
    def broker_address(self) -> str:
        """Where clients reach its broker role (:attr:`address` unless combined)."""
        return self.address if self.broker_port is None else f"{self.host}:{self.broker_port}"

    @property
    def metrics_url(self) -> str | None:
        if self.metrics_port is None:
            return None
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def client_address(self) -> str:
        """Where clients reach it (its own listener for them, else :attr:`address`)."""
        return self.address if self.client_port is None else f"{self.host}:{self.client_port}"

    @property
    def internal_address(self) -> str:
        """Where other nodes reach it (its internal listener, else :attr:`address`)."""
        if self.internal_port is None:
            return self.address
        return f"{self.host}:{self.internal_port}"

    @property
    def config_path(self) -> Path:
        return self.directory / "node.toml"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class LocalCluster:
    def __init__(
        self,
        base_dir: Path,
        *,
        controllers: int = 3,
        brokers: int = 0,
        host: str = "127.0.0.1",
        controller_settings: Mapping[str, object] | None = None,
        broker_settings: Mapping[str, object] | None = None,
        security_settings: Mapping[str, object] | None = None,
        log_level: str = "info",
        faults: bool = False,
        planted_bugs: Sequence[str] = (),
        addresses: Mapping[int, tuple[str, int]] | None = None,
        launch_prefix: Callable[[int], Sequence[str]] | None = None,
        tls: bool = False,
        metrics: bool = False,
        split_listeners: bool = False,
        kafka: bool = False,
        combined: bool = False,
    ) -> None:
        """``addresses`` gives chosen nodes their own (host, port) instead of ``host`` and a
        free port, and ``launch_prefix(node_id)`` is put before a node's command line: together
        they run each node elsewhere, e.g. in a network namespace of its own
        (``["ip", "netns", "exec", NAME]``; see raftka.ops.experiments.netns).

        ``tls``: :meth:`prepare` makes a throwaway CA and certificates under ``<base>/tls``
        (node-<id> for each node, ``admin`` for clients: :meth:`client_security`) and every
        node listens and calls with TLS and mTLS (:data:`TLS_NODE_SETTINGS`).
        ``security_settings`` adds to or overrides the nodes' ``[security]`` keys. ``metrics``
        gives every node a Prometheus endpoint on a free port (``NodeProcess.metrics_url``).

        ``split_listeners`` gives every broker an internal listener for other brokers and every
        controller a listener for admin clients (``NodeProcess.client_address`` /
        ``internal_address``; :attr:`client_bootstrap`); with ``tls``, client listeners ask for
        no certificate (:data:`SPLIT_LISTENER_SETTINGS`), so ``client_security(certificate=False,
        token=...)`` connects with a token only, while node traffic stays mTLS.

        ``kafka`` gives every broker a Kafka protocol listener on a free port
        (:attr:`kafka_bootstrap_servers`).

        ``combined``: every controller also runs the broker role, in the same process and
        with the same id (``roles = ["controller", "broker"]``; ``brokers`` must be 0):
        :attr:`brokers` then holds the same nodes as :attr:`nodes`."""
        if controllers not in (1, 3, 5):
            raise ValueError("a local cluster has 1, 3 or 5 controllers")
        if brokers < 0:
            raise ValueError("brokers must be >= 0")
        if combined and (brokers or split_listeners):
            raise ValueError(
                "a combined cluster's brokers are its controllers: no brokers=, no split_listeners"
            )
        self.base_dir = base_dir
        self.host = host
        self.log_level = log_level
        self.faults = faults
        """Start every node with fault injection enabled (for experiments and tests)."""
        self.planted_bugs = tuple(planted_bugs)
        """Deliberate bugs every node plants (``faults.planted_bugs``; needs ``faults``)."""
        self.launch_prefix = launch_prefix
        self.controller_settings = dict(controller_settings or {})
        self.broker_settings = dict(broker_settings or {})
        self.security_settings = dict(security_settings or {})
        """Every node's ``[security]`` section (e.g. ``{"authorizer_enable": True}``)."""
        self.cluster_id = new_cluster_id()
        self.tls = tls
        self.tls_dir = base_dir / "tls"
        self.nodes: dict[int, NodeProcess] = {}
        """The controllers, ids 1..controllers."""
        self.brokers: dict[int, NodeProcess] = {}
        """The brokers, ids following the controllers' (4, 5, 6 with 3 controllers)."""
        chosen = dict(addresses or {})
        for node_id in range(1, controllers + 1):
            directory = base_dir / f"node-{node_id}"
            node_host, port = chosen.get(node_id) or (host, free_port(host))
            self.nodes[node_id] = NodeProcess(node_id, node_host, port, directory)
        for node_id in range(controllers + 1, controllers + brokers + 1):
            directory = base_dir / f"broker-{node_id}"
            node_host, port = chosen.get(node_id) or (host, free_port(host))
            self.brokers[node_id] = NodeProcess(node_id, node_host, port, directory, role="broker")
        if combined:
            for node in self.nodes.values():
                node.role, node.broker_port = COMBINED, free_port(node.host)
            self.brokers = dict(self.nodes)
        self.split_listeners = split_listeners
        if split_listeners:
            for node in self.nodes.values():
                node.client_port = free_port(node.host)
            for node in self.brokers.values():
                node.internal_port = free_port(node.host)
        if kafka:
            for node in self.brokers.values():
                node.kafka_port = free_port(node.host)
        if metrics:
            for node in self._all().values():
                node.metrics_port = free_port(node.host)

    def _all(self) -> dict[int, NodeProcess]:
        """Every process once (a combined node is in both :attr:`nodes` and :attr:`brokers`)."""
        return {**self.nodes, **self.brokers}

    def node(self, node_id: int) -> NodeProcess:
        return self._all()[node_id]

    @property
    def bootstrap_servers(self) -> list[str]:
        """The brokers' client addresses."""
        return [n.broker_address for n in self.brokers.values()]

    @property
    def kafka_bootstrap_servers(self) -> list[str]:
        """The brokers' Kafka protocol listeners (empty unless ``kafka``)."""
        return [f"{n.host}:{n.kafka_port}" for n in self.brokers.values() if n.kafka_port]

    @property
    def bootstrap(self) -> list[str]:
        """The controllers' addresses in ``voters`` (their internal listeners)."""
        return [n.address for n in self.nodes.values()]

    @property
    def client_bootstrap(self) -> list[str]:
        """The controllers' listeners for admin clients (:attr:`bootstrap` unless
        ``split_listeners``)."""
        return [n.client_address for n in self.nodes.values()]

    @property
    def voters(self) -> str:
        return ",".join(f"{n.node_id}@{n.address}" for n in self.nodes.values())

    def prepare(self) -> None:
        """Write every node's config file and format its data directory."""
        if self.tls and not (self.tls_dir / "ca.crt").exists():
            ca = CertificateAuthority.create(self.tls_dir)
            for node in self._all().values():
                ca.issue(self.tls_dir, f"node-{node.node_id}", hosts=tls_hosts(node.host))
            ca.issue(self.tls_dir, ADMIN_CN)
        for node in self._all().values():
            node.directory.mkdir(parents=True, exist_ok=True)
            node.config_path.write_text(self._config_text(node))
            format_data_dir(node.data_dir, self.cluster_id, node.node_id, exist_ok=True)

    def _config_text(self, node: NodeProcess) -> str:
        lines = [
            f"node_id = {node.node_id}",
            f'data_dir = "{node.data_dir}"',
            f"roles = {_toml_value(list(node.roles))}",
            "",
            "[controller]",
            f'voters = "{self.voters}"',
        ]
        if "controller" in node.roles:
            if node.client_port is not None:
                lines.append(f'client_listen = "{node.client_address}"')
            lines += [f"{k} = {_toml_value(v)}" for k, v in self.controller_settings.items()]
        if "broker" in node.roles:
            lines += [
                "",
                "[broker]",
                f'listen = "{node.broker_address}"',
                f'rack = "{"abc"[(node.node_id - 1) % 3]}"',
            ]
            if node.internal_port is not None:
                lines.append(f'internal_listen = "{node.internal_address}"')
            if node.kafka_port is not None:
                lines.append(f'kafka_listen = "{node.host}:{node.kafka_port}"')
            lines += [f"{k} = {_toml_value(v)}" for k, v in self.broker_settings.items()]
        security = self.node_security(node)
        if security:
            lines += ["", "[security]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in security.items()]
        lines += ["", "[log]", f'level = "{self.log_level}"', 'format = "json"', ""]
        if node.metrics_port is not None:
            lines += ["[metrics]", f'listen = "{node.host}:{node.metrics_port}"', ""]
        if self.faults:
            lines += ["[faults]", "enabled = true"]
            if self.planted_bugs:
                lines.append(f"planted_bugs = {_toml_value(list(self.planted_bugs))}")
            lines.append("")
        return "\n".join(lines)

    def node_security(self, node: NodeProcess) -> dict[str, object]:
        """The node's ``[security]`` keys."""
        settings: dict[str, object] = {}
        if self.tls:
            node_ids = sorted(self._all())
            settings = {
                "tls_cert_file": str(self.tls_dir / f"node-{node.node_id}.crt"),
                "tls_key_file": str(self.tls_dir / f"node-{node.node_id}.key"),
                "tls_ca_file": str(self.tls_dir / "ca.crt"),
                **TLS_NODE_SETTINGS,
                "super_users": ";".join(
                    [*(f"User:node-{i}" for i in node_ids), f"User:{ADMIN_CN}"]
                ),
            }
            if self.split_listeners:
                settings.update(SPLIT_LISTENER_SETTINGS)
        settings.update(self.security_settings)
        return settings

    def client_security(self, *, certificate: bool = True, token: str = "") -> ChannelSecurity:
        """How a client reaches this cluster: TLS trusting its CA, with the admin certificate
        (``User:admin``, a super user) unless ``certificate`` is false, and a bearer token."""
        if not self.tls:
            return ChannelSecurity(token=token)
        return ChannelSecurity(
            tls=True,
            ca_file=str(self.tls_dir / "ca.crt"),
            cert_file=str(self.tls_dir / f"{ADMIN_CN}.crt") if certificate else "",
            key_file=str(self.tls_dir / f"{ADMIN_CN}.key") if certificate else "",
            token=token,
        )

    def admin_tls_files(self) -> TlsFiles | None:
        """The CA and the admin's certificate and key of a ``tls`` cluster (None otherwise)."""
        if not self.tls:
            return None
        return TlsFiles(
            ca_file=str(self.tls_dir / "ca.crt"),
            cert_file=str(self.tls_dir / f"{ADMIN_CN}.crt"),
            key_file=str(self.tls_dir / f"{ADMIN_CN}.key"),
        )

    def client_settings(self) -> dict[str, Any]:
        """Producer / Consumer settings (keyword names) that reach this cluster as the admin:
        nothing for a plaintext cluster, SSL with the admin certificate for a ``tls`` one."""
        files = self.admin_tls_files()
        if files is None:
            return {}
        return {
            "security_protocol": "SSL",
            "ssl_ca_location": files.ca_file,
            "ssl_certificate_location": files.cert_file,
            "ssl_key_location": files.key_file,
        }

    def start(self, node_id: int | None = None) -> None:
        """Start one node, or every node that is not running."""
        targets = [self.node(node_id)] if node_id is not None else list(self._all().values())
        for node in targets:
            if node.running:
                continue
            log = open(node.log_path, "ab")  # noqa: SIM115 - handed to the child process
            try:
                prefix = list(self.launch_prefix(node.node_id)) if self.launch_prefix else []
                node.process = subprocess.Popen(
                    [
                        *prefix,
                        sys.executable,
                        "-m",
                        "raftka.client.cli",
                        "server",
                        "--config",
                        str(node.config_path),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
                node.incarnation += 1
                node.started = start_time(node.process.pid)
            finally:
                log.close()

    def signal(self, node_id: int, sig: signal.Signals) -> None:
        node = self.node(node_id)
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(sig)

    def kill(self, node_id: int) -> None:
        """kill -9, and reap the process."""
        node = self.node(node_id)
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGCONT)
            node.process.kill()
            node.process.wait()

    def lose_unflushed_writes(self, node_id: int) -> list[CutTail]:
        """A power loss for a node that is not running (kill it first): each of its partition
        logs loses half of what its active segment holds past the recovery point
        (:func:`~raftka.ops.power_loss.cut_unflushed_tails`)."""
        node = self.node(node_id)
        if node.process is not None and node.process.poll() is None:
            raise RuntimeError(f"node {node_id} is running; kill it before cutting its logs")
        return cut_unflushed_tails(node.data_dir)

    def pause(self, node_id: int) -> None:
        self.signal(node_id, signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        self.signal(node_id, signal.SIGCONT)

    def stop(self, node_id: int, timeout_s: float = 15.0) -> int | None:
        """Graceful stop (SIGTERM); kill -9 if it does not exit in time. Returns the exit code."""
        node = self.node(node_id)
        if node.process is None:
            return None
        if node.process.poll() is None:
            node.process.send_signal(signal.SIGCONT)
            node.process.terminate()
            try:
                node.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
        return node.process.returncode

    def stop_all(self, timeout_s: float = 15.0) -> None:
        """Brokers first (their controlled shutdown needs the controllers), then controllers."""
        for group in (self.brokers, self.nodes):
            self._stop_group(list(group.values()), timeout_s)

    def _stop_group(self, nodes: list[NodeProcess], timeout_s: float) -> None:
        for node in nodes:
            if node.running:
                assert node.process is not None
                node.process.send_signal(signal.SIGCONT)
                node.process.terminate()
        end = time.monotonic() + timeout_s
        for node in nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()

    def log_tail(self, node_id: int, lines: int = 30) -> str:
        path = self.node(node_id).log_path
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> LocalCluster:
        self.prepare()
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all()


@contextlib.contextmanager
def running_cluster(base_dir: Path, **kwargs: object) -> Iterator[LocalCluster]:
    cluster = LocalCluster(base_dir, **kwargs)  # type: ignore[arg-type]
    with cluster:
        yield cluster


def stop_clusters_on_sigterm() -> None:
    """For scripts that own a LocalCluster: turn SIGTERM into KeyboardInterrupt so their
    ``finally: cluster.stop_all()`` runs (the nodes run in sessions of their own and would
    otherwise outlive a killed script)."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
