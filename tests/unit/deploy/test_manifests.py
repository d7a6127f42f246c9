"""deploy/k8s: every manifest validates, offline, against the Kubernetes OpenAPI schemas of a
pinned release (kubernetes-validate bundles them; strict: unknown fields are errors), and the
Raftka-specific promises hold: disruption budgets, probes, non-root pods, mounted volumes, and
per-pod configs that load through the node's own config loader."""

from __future__ import annotations

import copy
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from raftka.broker.config import BrokerConfig
from raftka.common.config import load_config
from raftka.ops.node import NodeConfig
from tests.unit.deploy.manifests import (
    K8S,
    KUBERNETES_VERSION,
    Doc,
    documents,
    env_of,
    find,
    manifest_files,
    render,
)

SETS = {
    # StatefulSet: (node id base, headless service, port name, port)
    "raftka-controller": (1, "raftka-controller", "controller", 9093),
    "raftka-broker": (100, "raftka-broker", "broker", 9092),
}

SECURITY = {
    "tls_cert_file": "/etc/raftka/tls/tls.crt",
    "tls_key_file": "/etc/raftka/tls/tls.key",
    "tls_ca_file": "/etc/raftka/tls/ca.crt",
    "client_auth": "required",
    "principal_mapping_rules": "RULE:^CN=([^,]+).*$/$1/,DEFAULT",
    "authorizer_enable": True,
    "allow_plaintext": False,
}
"""The [security] keys the security work defines, as the templates must spell them."""

NOT_ON_MAIN = ("security", "metrics")
"""Config sections other work adds; the loader on this branch would refuse them."""


def _pod_spec(name: str) -> Doc:
    spec: Doc = find("StatefulSet", name)["spec"]["template"]["spec"]
    return spec


def _container(name: str) -> Doc:
    (container,) = _pod_spec(name)["containers"]
    result: Doc = container
    return result


@pytest.mark.parametrize(
    ("path", "doc"),
    documents(),
    ids=[f"{p.name}:{d['kind']}/{d['metadata']['name']}" for p, d in documents()],
)
def test_manifest_validates_against_the_pinned_kubernetes_schema(path: Path, doc: Doc) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert "namespace" not in doc["metadata"], f"{path.name}: manifests name no namespace"


def test_the_validator_catches_a_misspelt_field() -> None:
    """The check above can fail: a typo in a StatefulSet is an error, not ignored."""
    bad = copy.deepcopy(find("StatefulSet", "raftka-broker"))
    bad["spec"]["replica"] = bad["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in manifest_files())


@pytest.mark.parametrize("name", SETS)
def test_statefulset_has_headless_service_and_disruption_budget(name: str) -> None:
    sts = find("StatefulSet", name)
    _base, service_name, port_name, port = SETS[name]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # A voter is ready only inside a quorum: OrderedReady would never start pod 1.
    assert sts["spec"]["podManagementPolicy"] == "Parallel"

    service = find("Service", sts["spec"]["serviceName"])
    assert service["metadata"]["name"] == service_name
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"].items() <= labels.items()
    assert {"name": port_name, "port": port, "targetPort": port_name} in service["spec"]["ports"]

    budgets = [
        d
        for _p, d in documents()
        if d["kind"] == "PodDisruptionBudget"
        and d["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    assert len(budgets) == 1, f"{name}: one PodDisruptionBudget selects its pods"
    assert budgets[0]["spec"]["maxUnavailable"] == 1


def test_clients_bootstrap_through_a_service_of_ready_brokers() -> None:
    bootstrap = find("Service", "raftka-bootstrap")
    labels = find("StatefulSet", "raftka-broker")["spec"]["template"]["metadata"]["labels"]
    assert bootstrap["spec"]["selector"].items() <= labels.items()
    assert not bootstrap["spec"].get("publishNotReadyAddresses", False)
    assert [p["port"] for p in bootstrap["spec"]["ports"]] == [9092]


@pytest.mark.parametrize("name", SETS)
def test_pods_run_as_non_root_with_probes_and_mounted_volumes(name: str) -> None:
    pod = _pod_spec(name)
    container = _container(name)
    _base, _service, port_name, port = SETS[name]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": port_name, "containerPort": port} in container["ports"]

    assert container["readinessProbe"]["exec"]["command"] == ["raftka-ready"]
    assert container["livenessProbe"]["tcpSocket"]["port"] == port_name
    assert container["startupProbe"]["tcpSocket"]["port"] == port_name

    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claims = {
        c["metadata"]["name"] for c in find("StatefulSet", name)["spec"]["volumeClaimTemplates"]
    }
    for mount_name in mounts.values():
        assert mount_name in volumes or mount_name in claims, f"{name}: {mount_name} undefined"
    assert mounts["/var/lib/raftka"] in claims  # data on a persistent volume
    assert volumes[mounts["/etc/raftka/tls"]]["secret"]["secretName"] == "raftka-tls"
    assert volumes[mounts["/etc/raftka/config"]]["configMap"]["name"] == "raftka-config"
    env = env_of(container)
    assert env["RAFTKA_CONFIG"].startswith("/run/raftka/")  # a writable emptyDir
    assert "/run/raftka" in mounts and "emptyDir" in volumes[mounts["/run/raftka"]]
    assert env["RAFTKA_CLUSTER_ID"]["configMapKeyRef"]["name"] == "raftka-cluster"


def test_brokers_have_time_for_a_controlled_shutdown() -> None:
    """SIGTERM moves a broker's leaderships away (bounded by controlled_shutdown_timeout_ms);
    Kubernetes must not SIGKILL it before that and the flush that follows."""
    rendered = _rendered("raftka-broker", 0)
    timeout_ms = rendered["broker"].get(
        "controlled_shutdown_timeout_ms", BrokerConfig().controlled_shutdown_timeout_ms
    )
    grace_s = _pod_spec("raftka-broker")["terminationGracePeriodSeconds"]
    assert grace_s >= timeout_ms / 1000 + 30


def _template(name: str) -> str:
    env = env_of(_container(name))
    key = Path(env["RAFTKA_CONFIG_TEMPLATE"]).name
    text: str = find("ConfigMap", "raftka-config")["data"][key]
    return text


def _rendered(name: str, ordinal: int) -> dict[str, Any]:
    """The config the entrypoint renders for the pod ``<name>-<ordinal>``."""
    env = env_of(_container(name))
    with tempfile.TemporaryDirectory() as tmp:
        result = render(
            _template(name),
            f"{name}-{ordinal}",
            {"RAFTKA_NODE_ID_BASE": env["RAFTKA_NODE_ID_BASE"]},
            Path(tmp),
        )
    assert result.returncode == 0, result.stderr
    return tomllib.loads(result.stdout)


@pytest.mark.parametrize("name", SETS)
@pytest.mark.parametrize("ordinal", [0, 1, 2])
def test_each_pod_renders_a_config_the_node_loads(name: str, ordinal: int, tmp_path: Path) -> None:
    base, service, _port_name, port = SETS[name]
    rendered = _rendered(name, ordinal)
    assert rendered["node_id"] == base + ordinal
    assert rendered["security"] == {**SECURITY, "super_users": rendered["security"]["super_users"]}
    assert rendered["security"]["super_users"].startswith("User:")
    assert rendered["metrics"] == {"listen": "0.0.0.0:9404"}
    # The keys on this branch load through the node's own loader (NodeConfig checks, e.g.,
    # that a controller's node id is among the voters).
    on_main = {k: v for k, v in rendered.items() if k not in NOT_ON_MAIN}
    path = tmp_path / "node.toml"
    path.write_text(_toml(on_main))
    config = load_config(NodeConfig, path)
    assert config.node_id == base + ordinal
    controllers = [f"raftka-controller-{i}.raftka-controller:9093" for i in range(3)]
    assert config.controller_addresses == controllers
    if name == "raftka-controller":
        assert config.roles == ("controller",)
        assert config.self_voter.address == f"{name}-{ordinal}.{service}:{port}"
    else:
        assert config.roles == ("broker",)
        assert config.broker.host == f"{name}-{ordinal}.{service}"
        assert config.broker.port == port


def _toml(tree: dict[str, Any]) -> str:
    """Enough TOML for a config tree of scalars, lists of strings and one level of tables."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"{k} = {value(v)}" for k, v in tree.items() if not isinstance(v, dict)]
    for table, items in tree.items():
        if isinstance(items, dict):
            lines += [f"[{table}]", *(f"{k} = {value(v)}" for k, v in items.items())]
    return "\n".join(lines) + "\n"
