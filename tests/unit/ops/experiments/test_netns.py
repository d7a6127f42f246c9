"""The network-namespace backend, with the `ip` commands recorded instead of run: what it
builds, how a partition cuts both directions and heals, that it undoes a half-built setup,
and that it refuses a subnet already in use. (tests/integration/test_experiment.py runs it for
real when it can.)"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from raftka.ops.experiments.netns import BOGUS_MAC, NetnsError, NetnsNetwork


class Recorder:
    def __init__(self, fail_on: str = "", message: str = "boom") -> None:
        self.commands: list[str] = []
        self.fail_on = fail_on
        self.message = message

    def __call__(self, args: Sequence[str]) -> None:
        line = " ".join(args)
        self.commands.append(line)
        if self.fail_on and self.fail_on in line:
            raise NetnsError(f"`{line}` failed: {self.message}")


def network(recorder: Recorder, nodes: Sequence[int] = (1, 2, 3)) -> NetnsNetwork:
    return NetnsNetwork(nodes, subnet="10.213.7.0/24", run_id="ab12", runner=recorder)


def test_setup_builds_a_namespace_per_node_around_a_bridge_and_cleanup_removes_them() -> None:
    rec = Recorder()
    net = network(rec)
    net.setup(used_addresses=["127.0.0.1", "192.168.1.5"])
    assert net.address(2) == "10.213.7.2" and net.host_address == "10.213.7.254"
    assert net.node_addresses()[3] == ("10.213.7.3", 9092)
    assert net.launch_prefix(1) == ["ip", "netns", "exec", "rkxab12-n1"]
    made = [c for c in rec.commands if c.startswith("ip netns add")]
    assert made == ["ip netns add rkxab12-br", *(f"ip netns add rkxab12-n{n}" for n in (1, 2, 3))]
    assert "ip -n rkxab12-n2 addr add 10.213.7.2/24 dev rkxab12n2c" in rec.commands
    assert "ip addr add 10.213.7.254/24 dev rkxab12h" in rec.commands
    assert all(
        len(name) <= 15 for c in rec.commands for name in c.split() if name.startswith("rkxab12n")
    )
    rec.commands.clear()
    assert net.cleanup() == []
    assert rec.commands == [
        "ip link del rkxab12h",
        *(f"ip netns del rkxab12-n{n}" for n in (3, 2, 1)),
        "ip netns del rkxab12-br",
    ]
    rec.commands.clear()
    net.cleanup()
    assert rec.commands == [], "cleanup twice does nothing the second time"


def test_a_failed_setup_undoes_what_it_built() -> None:
    rec = Recorder(fail_on="addr add 10.213.7.2/24")
    net = network(rec)
    with pytest.raises(NetnsError, match="boom"):
        net.setup()
    deleted = [c for c in rec.commands if c.startswith("ip netns del")]
    assert deleted == [
        "ip netns del rkxab12-n2",
        "ip netns del rkxab12-n1",
        "ip netns del rkxab12-br",
    ]


def test_a_subnet_in_use_is_refused_before_anything_is_built() -> None:
    rec = Recorder()
    with pytest.raises(NetnsError, match="already in use"):
        network(rec).setup(used_addresses=["10.213.7.9"])
    assert rec.commands == []
    with pytest.raises(NetnsError, match="IPv4 /24"):
        NetnsNetwork([1], subnet="10.213.0.0/16", runner=rec)


def test_a_partition_cuts_both_directions_and_heals_them() -> None:
    rec = Recorder()
    net = network(rec)
    asyncio.run(net.partition(2))
    cut = set(rec.commands)
    for here, there in ((2, 1), (2, 3), (1, 2), (3, 2)):
        assert (
            f"ip -n rkxab12-n{here} neigh replace 10.213.7.{there} lladdr {BOGUS_MAC} "
            f"dev rkxab12n{here}c nud permanent"
        ) in cut
    assert not any("10.213.7.3 lladdr" in c and "-n1 " in c for c in cut), "1 and 3 still talk"
    rec.commands.clear()
    asyncio.run(net.heal(2))
    deleted = {c for c in rec.commands if "neigh del" in c}
    assert deleted == {
        "ip -n rkxab12-n2 neigh del 10.213.7.1 dev rkxab12n2c",
        "ip -n rkxab12-n2 neigh del 10.213.7.3 dev rkxab12n2c",
        "ip -n rkxab12-n1 neigh del 10.213.7.2 dev rkxab12n1c",
        "ip -n rkxab12-n3 neigh del 10.213.7.2 dev rkxab12n3c",
    }


def test_healing_one_partition_keeps_another_node_cut() -> None:
    rec = Recorder()
    net = network(rec)
    asyncio.run(net.partition(1))
    asyncio.run(net.partition(3))
    rec.commands.clear()
    asyncio.run(net.heal(1))
    deleted = {c for c in rec.commands if "neigh del" in c}
    assert deleted == {
        "ip -n rkxab12-n1 neigh del 10.213.7.2 dev rkxab12n1c",
        "ip -n rkxab12-n2 neigh del 10.213.7.1 dev rkxab12n2c",
    }, "1 and 3 stay apart while 3 is partitioned"


def test_delay_and_loss_use_netem_on_both_ends_and_say_when_the_kernel_lacks_it() -> None:
    rec = Recorder()
    asyncio.run(network(rec).degrade(2, delay_ms=200, loss=0.3))
    assert rec.commands == [
        "ip netns exec rkxab12-n2 tc qdisc replace dev rkxab12n2c root netem delay 200ms loss 30%",
        "ip netns exec rkxab12-br tc qdisc replace dev rkxab12n2b root netem delay 200ms loss 30%",
    ]
    no_netem = Recorder(fail_on="netem", message="Error: Specified qdisc kind is unknown.")
    with pytest.raises(NetnsError, match="CONFIG_NET_SCH_NETEM"):
        asyncio.run(network(no_netem).degrade(2, delay_ms=200))
