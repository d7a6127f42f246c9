"""The experiment's cluster: plaintext on namespace addresses only when told the network is
trusted, TLS with certificates for the nodes' real addresses, and the experiment's clients
secured for the run only (no process is started here)."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

from cryptography import x509

from raftka.client.consumer import ConsumerConfig
from raftka.common.rpc.channels import default_security
from raftka.ops.experiments.cluster_setup import (
    clients_secured,
    consumer_properties,
    make_cluster,
)
from raftka.ops.experiments.config import ExperimentConfig
from raftka.ops.experiments.group_member import with_properties
from raftka.ops.experiments.netns import NetnsNetwork
from raftka.ops.local_cluster import LocalCluster


def netns() -> NetnsNetwork:
    return NetnsNetwork([1, 2, 3, 4], subnet="10.213.7.0/24", runner=lambda _args: None)


def cluster(tmp_path: Path, *, tls: bool, network: NetnsNetwork | None) -> LocalCluster:
    made = make_cluster(
        tmp_path,
        controllers=3,
        brokers=1,
        controller_settings={},
        broker_settings={},
        netns=network,
        tls=tls,
    )
    made.prepare()
    return made


def security_of(c: LocalCluster, node_id: int) -> dict[str, object]:
    section: dict[str, object] = tomllib.loads(c.node(node_id).config_path.read_text()).get(
        "security", {}
    )
    return section


def test_plaintext_on_namespace_addresses_is_allowed_explicitly(tmp_path: Path) -> None:
    c = cluster(tmp_path, tls=False, network=netns())
    assert c.node(4).address == "10.213.7.4:9092"
    assert security_of(c, 4) == {"allow_plaintext": True}


def test_loopback_clusters_need_no_plaintext_override(tmp_path: Path) -> None:
    c = cluster(tmp_path, tls=False, network=None)
    assert security_of(c, 1) == {}


def test_tls_certificates_carry_each_node_namespace_address(tmp_path: Path) -> None:
    c = cluster(tmp_path, tls=True, network=netns())
    for node_id in (1, 2, 3, 4):
        security = security_of(c, node_id)
        assert "allow_plaintext" not in security
        assert security["client_auth"] == "required" and security["authorizer_enable"] is True
        cert = x509.load_pem_x509_certificate(Path(str(security["tls_cert_file"])).read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = sans.get_values_for_type(x509.IPAddress)
        assert ipaddress.ip_address(f"10.213.7.{node_id}") in ips


def test_clients_are_secured_for_the_run_only(tmp_path: Path) -> None:
    c = cluster(tmp_path, tls=True, network=None)
    assert default_security() is None
    with clients_secured(c):
        security = default_security()
        assert security is not None and security.tls
        assert security.cert_file.endswith("admin.crt")
    assert default_security() is None
    with clients_secured(cluster(tmp_path / "plain", tls=False, network=None)):
        assert default_security() is None


def test_group_members_get_the_cluster_tls_settings(tmp_path: Path) -> None:
    c = cluster(tmp_path, tls=True, network=None)
    base = ConsumerConfig(bootstrap_servers="127.0.0.1:9092", group_id="g")
    member = with_properties(base, consumer_properties(c))
    assert member.security_protocol == "SSL"
    assert member.ssl_certificate_location == str(c.tls_dir / "admin.crt")
    assert member.ssl_ca_location == str(c.tls_dir / "ca.crt")
    assert member.group_id == "g", "settings not given are kept"
    assert consumer_properties(cluster(tmp_path / "plain", tls=False, network=None)) == []


def test_the_title_says_tls() -> None:
    config = ExperimentConfig(out_dir=Path("x"), tls=True)
    assert ", tls;" in config.title(config.schedule())
    assert config.to_json()["tls"] is True
