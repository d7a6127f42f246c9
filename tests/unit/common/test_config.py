from __future__ import annotations

from pathlib import Path

import pytest

from raftka.common.config import load_config
from raftka.common.errors import ConfigFileError
from raftka.controller.config import parse_voters
from raftka.ops.node import NodeConfig

VOTERS = "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_file_then_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path, f'node_id = 2\ndata_dir = "/d"\n[controller]\nvoters = "{VOTERS}"\ntick_ms = 40\n'
    )
    config = load_config(NodeConfig, path, ["controller.tick_ms=25", "log.format=console"])
    assert config.node_id == 2
    assert config.controller.tick_ms == 25
    assert config.log.format == "console"
    assert config.listen_address == "127.0.0.1:9102"
    assert config.controller.election_ticks == 500 // 25


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'node_id = 1\ndata_dir = "/d"\n[controller]\nvoters = "V"\ntick_ms = "x"\n',
            "controller.tick_ms: expected an integer",
        ),
        (
            'node_id = 1\ndata_dir = "/d"\n[controller]\nvoters = "V"\ntickms = 3\n',
            "unknown config key controller.tickms",
        ),
        (
            'node_id = 9\ndata_dir = "/d"\n[controller]\nvoters = "V"\n',
            "node_id 9 is not among controller.voters",
        ),
        ('data_dir = "/d"\n[controller]\nvoters = "V"\n', "node_id is required"),
        (
            'node_id = 1\ndata_dir = "/d"\n[controller]\nvoters = "V"\n[log]\nformat = "xml"\n',
            "log.format: expected one of json, console",
        ),
        ("node_id = \n", "is not valid TOML"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigFileError) as e:
        load_config(NodeConfig, write(tmp_path, text.replace('"V"', f'"{VOTERS}"')))
    assert message in e.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="does not exist"):
        load_config(NodeConfig, tmp_path / "absent.toml")


def test_bad_override_shape(tmp_path: Path) -> None:
    path = write(tmp_path, f'node_id = 1\ndata_dir = "/d"\n[controller]\nvoters = "{VOTERS}"\n')
    with pytest.raises(ConfigFileError, match=r"section\.key=value"):
        load_config(NodeConfig, path, ["controller.tick_ms"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1@h:1,1@h:2,2@h:3", "repeat"),
        ("1@h:1,2@h:2", "use 3 or 5"),
        ("1-h:1,2@h:2,3@h:3", "not of the form"),
        ("1@h,2@h:2,3@h:3", "not of the form"),
    ],
)
def test_voter_list_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigFileError, match=message):
        parse_voters(text)


def test_voter_list() -> None:
    voters = parse_voters(VOTERS)
    assert [str(v) for v in voters] == VOTERS.split(",")


def test_metrics_are_off_unless_the_metrics_table_sets_listen(tmp_path: Path) -> None:
    base = f'node_id = 1\ndata_dir = "/d"\n[controller]\nvoters = "{VOTERS}"\n'
    assert not load_config(NodeConfig, write(tmp_path, base)).metrics.enabled
    on = load_config(NodeConfig, write(tmp_path, base + '[metrics]\nlisten = "0.0.0.0:9404"\n'))
    assert on.metrics.listen == "0.0.0.0:9404"
    with pytest.raises(ConfigFileError, match=r"metrics\.listen: expected host:port"):
        load_config(NodeConfig, write(tmp_path, base + '[metrics]\nlisten = "nowhere"\n'))


def test_a_local_cluster_with_metrics_gives_every_node_an_endpoint(tmp_path: Path) -> None:
    from raftka.ops.local_cluster import LocalCluster

    cluster = LocalCluster(tmp_path, controllers=1, brokers=1, metrics=True)
    cluster.prepare()
    ports = set()
    for node in (*cluster.nodes.values(), *cluster.brokers.values()):
        config = load_config(NodeConfig, node.config_path)
        assert node.metrics_url == f"http://{config.metrics.listen}/metrics"
        ports.add(node.metrics_port)
    assert len(ports) == 2 and None not in ports
    plain = LocalCluster(tmp_path / "plain", controllers=1)
    plain.prepare()
    assert not load_config(NodeConfig, plain.nodes[1].config_path).metrics.enabled
