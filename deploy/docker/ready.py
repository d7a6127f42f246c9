#!/usr/bin/env python3
"""raftka-ready: exit 0 if every role of this node reports SERVING on the standard gRPC health
service (grpc.health.v1), 1 otherwise. The readiness probe of deploy/k8s and the image's
HEALTHCHECK.

Why not the kubelet's native ``grpc:`` probe: it speaks plaintext only, and a node that
requires TLS (``[security]``) refuses it. This probe reads the node's rendered config
(RAFTKA_CONFIG) with the standard library alone, so it works whatever config keys the node
knows: it finds each role's port and, when ``[security] tls_ca_file`` is set, connects with
the node's own certificate, checking the server's name against RAFTKA_TLS_SERVER_NAME (the
pod's DNS name) when that is set.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_S = float(os.environ.get("RAFTKA_READY_TIMEOUT_S", "3"))
SERVICES = {"controller": "raftka.v1.ControllerService", "broker": "raftka.v1.BrokerService"}


def _local(listen: str) -> str:
    """The address to dial for a listen address: a wildcard host means this host."""
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def role_addresses(config: dict[str, Any]) -> dict[str, str]:
    """``{role: address to probe}`` for each role the node runs."""
    roles = config.get("roles", ["controller"])
    addresses: dict[str, str] = {}
    if "controller" in roles:
        controller = config.get("controller", {})
        listen = controller.get("listen", "")
        if not listen:
            node = str(config["node_id"])
            for voter in str(controller.get("voters", "")).split(","):
                voter_id, _, address = voter.strip().partition("@")
                if voter_id == node:
                    listen = address
        addresses["controller"] = _local(listen)
    if "broker" in roles:
        addresses["broker"] = _local(config.get("broker", {}).get("listen", "127.0.0.1:9092"))
    return addresses


def _channel(address: str, security: dict[str, Any]) -> grpc.Channel:
    ca = security.get("tls_ca_file", "")
    if not ca:
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(ca).read_bytes(),
        private_key=Path(security["tls_key_file"]).read_bytes(),
        certificate_chain=Path(security["tls_cert_file"]).read_bytes(),
    )
    options = []
    server_name = os.environ.get("RAFTKA_TLS_SERVER_NAME", "")
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel(address, credentials, options=options)


def check(config: dict[str, Any]) -> list[str]:
    """The problems found (empty: ready)."""
    problems = []
    security = config.get("security", {})
    for role, address in role_addresses(config).items():
        with _channel(address, security) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                response = stub.Check(
                    health_pb2.HealthCheckRequest(service=SERVICES[role]), timeout=TIMEOUT_S
                )
            except grpc.RpcError as e:
                problems.append(f"{role} at {address}: {e.code().name}")
                continue
            if response.status != health_pb2.HealthCheckResponse.SERVING:
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                problems.append(f"{role} at {address}: {status}")
    return problems


def main() -> int:
    path = Path(os.environ.get("RAFTKA_CONFIG", "/run/raftka/node.toml"))
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        print(f"raftka-ready: cannot read the node's config {path}: {e}", file=sys.stderr)
        return 1
    problems = check(config)
    for problem in problems:
        print(f"raftka-ready: not ready: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
