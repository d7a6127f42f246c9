"""Real network faults: every node in a Linux network namespace of its own (Linux, as root).

Layout, all created by the experiment and deleted by :meth:`NetnsNetwork.cleanup` (also on
Ctrl-C and SIGTERM): a bridge in a namespace of its own (``rkx<run>-br``); each node in
``rkx<run>-n<id>`` with the address ``<prefix>.<id>`` on one end of a veth pair whose other end
is a port of the bridge; and one more veth pair from the experiment's own (root) namespace to
the bridge, holding ``<prefix>.254``, through which the experiment's clients reach the nodes.
The subnet (default ``10.213.0.0/24``) must not be in use on the machine: :meth:`setup`
checks, and refuses if it is. Nothing else on the machine is touched or addressed.

Faults:

- ``partition``: the node and every other node stop hearing each other. Each side gets a
  permanent neighbour (ARP) entry for the other's address pointing at a MAC address nobody
  has, so packets leave and vanish on the wire, silently, as across a cut link between hosts
  (TCP retransmits and times out). The experiment's clients still reach the node. Healing
  deletes the entries and ARP resolves the real addresses again.
- ``delay`` / ``loss``: a netem qdisc on both ends of the node's veth pair
  (``tc qdisc replace ... netem delay 200ms`` / ``loss 30%``). Kernels built without netem
  (CONFIG_NET_SCH_NETEM) refuse; the fault then fails with a message that says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import platform
import secrets
import shutil
import subprocess
from collections.abc import Callable, Sequence

from raftka.common.errors import RaftkaError

BOGUS_MAC = "02:00:00:00:00:01"
"""A locally administered unicast address no interface of the experiment has."""
DEFAULT_SUBNET = "10.213.0.0/24"
PORT = 9092
"""Every node listens on this port inside its own namespace."""

Runner = Callable[[Sequence[str]], None]


class NetnsError(RaftkaError):
    """A namespace, link or qdisc could not be made or changed; the message says why."""


def requirements_missing() -> str | None:
    """Why the netns mode cannot run here, or None when it can."""
    if platform.system() != "Linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (run as root, or drop --netns)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    return None


def run_command(args: Sequence[str]) -> None:
    done = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetnsError(f"`{' '.join(args)}` failed: {done.stderr.strip() or done.returncode}")


class NetnsNetwork:
    def __init__(
        self,
        node_ids: Sequence[int],
        *,
        subnet: str = DEFAULT_SUBNET,
        run_id: str | None = None,
        runner: Runner = run_command,
    ) -> None:
        network = ipaddress.ip_network(subnet, strict=True)
        if network.version != 4 or network.prefixlen != 24:
            raise NetnsError(f"--netns-subnet must be an IPv4 /24 such as {DEFAULT_SUBNET}")
        if any(not 1 <= n <= 250 for n in node_ids):
            raise NetnsError("node ids must be 1..250 to get an address in the subnet")
        self.subnet = network
        self.node_ids = tuple(node_ids)
        self.run_id = run_id or secrets.token_hex(2)
        self._run = runner
        self._created: list[str] = []
        """Namespaces made so far (deleted in reverse order)."""
        self._host_link = f"rkx{self.run_id}h"
        self._host_link_made = False
        self._partitioned: set[int] = set()

    # ------------------------------------------------------------------ names

    def namespace(self, node: int) -> str:
        return f"rkx{self.run_id}-n{node}"

    @property
    def bridge_namespace(self) -> str:
        return f"rkx{self.run_id}-br"

    def _veth(self, node: int, end: str) -> str:
        return f"rkx{self.run_id}n{node}{end}"  # at most 15 characters, as Linux requires

    def address(self, node: int) -> str:
        return str(self.subnet.network_address + node)

    @property
    def host_address(self) -> str:
        return str(self.subnet.network_address + 254)

    def launch_prefix(self, node: int) -> list[str]:
        """Prepended to a node's command line: runs it inside its namespace."""
        return ["ip", "netns", "exec", self.namespace(node)]

    def node_addresses(self) -> dict[int, tuple[str, int]]:
        return {n: (self.address(n), PORT) for n in self.node_ids}

    # ------------------------------------------------------------------ lifecycle

    def setup(self, used_addresses: Sequence[str] = ()) -> None:
        """Build the namespaces and links; on any failure, undo what was built and raise.
        ``used_addresses``: the machine's own IPv4 addresses (checked against the subnet)."""
        clash = [a for a in used_addresses if ipaddress.ip_address(a) in self.subnet]
        if clash:
            raise NetnsError(
                f"the subnet {self.subnet} is already in use on this machine ({', '.join(clash)}): "
                "choose another with --netns-subnet"
            )
        run = self._run
        try:
            bridge_ns = self.bridge_namespace
            self._add_namespace(bridge_ns)
            run(["ip", "-n", bridge_ns, "link", "add", "br0", "type", "bridge"])
            run(["ip", "-n", bridge_ns, "link", "set", "br0", "up"])
            prefix = self.subnet.prefixlen
            for node in self.node_ids:
                ns, inner, outer = (
                    self.namespace(node),
                    self._veth(node, "c"),
                    self._veth(node, "b"),
                )
                self._add_namespace(ns)
                run(["ip", "link", "add", inner, "netns", ns, "type", "veth", "peer", "name", outer, "netns", bridge_ns])  # fmt: skip
                run(["ip", "-n", bridge_ns, "link", "set", outer, "master", "br0", "up"])
                run(["ip", "-n", ns, "link", "set", "lo", "up"])
                run(["ip", "-n", ns, "addr", "add", f"{self.address(node)}/{prefix}", "dev", inner])
                run(["ip", "-n", ns, "link", "set", inner, "up"])
            host, host_peer = self._host_link, f"rkx{self.run_id}g"
            run(["ip", "link", "add", host, "type", "veth", "peer", "name", host_peer, "netns", bridge_ns])  # fmt: skip
            self._host_link_made = True
            run(["ip", "-n", bridge_ns, "link", "set", host_peer, "master", "br0", "up"])
            run(["ip", "addr", "add", f"{self.host_address}/{prefix}", "dev", host])
            run(["ip", "link", "set", host, "up"])
        except BaseException:
            self.cleanup()
            raise

    def _add_namespace(self, name: str) -> None:
        self._run(["ip", "netns", "add", name])
        self._created.append(name)

    def cleanup(self) -> list[str]:
        """Delete everything :meth:`setup` made (the host veth goes with its peer). Never
        raises; returns what could not be deleted."""
        failed = []
        if self._host_link_made:
            with contextlib.suppress(NetnsError):  # already gone with the bridge namespace
                self._run(["ip", "link", "del", self._host_link])
            self._host_link_made = False
        for name in reversed(self._created):
            try:
                self._run(["ip", "netns", "del", name])
            except NetnsError as e:
                failed.append(f"{name}: {e.message}")
        self._created.clear()
        return failed

    # ------------------------------------------------------------------ faults

    async def partition(self, node: int) -> None:
        await asyncio.to_thread(self._cut, node)

    def _cut(self, node: int) -> None:
        self._partitioned.add(node)
        for peer in self.node_ids:
            if peer == node:
                continue
            for here, there in ((node, peer), (peer, node)):
                self._run(
                    ["ip", "-n", self.namespace(here), "neigh", "replace", self.address(there),
                     "lladdr", BOGUS_MAC, "dev", self._veth(here, "c"), "nud", "permanent"]
                )  # fmt: skip

    async def degrade(self, node: int, *, delay_ms: int = 0, loss: float = 0.0) -> None:
        netem = ["delay", f"{delay_ms}ms"] if delay_ms else []
        if loss:
            netem += ["loss", f"{loss * 100:g}%"]

        def apply() -> None:
            for ns, dev in self._ends(node):
                try:
                    self._run(["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", "netem", *netem])  # fmt: skip
                except NetnsError as e:
                    if "unknown" in e.message.lower():
                        raise NetnsError(
                            "this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM), so delay and "
                            "loss are unavailable in --netns mode; use kill, pause and partition"
                        ) from None
                    raise

        await asyncio.to_thread(apply)

    def _ends(self, node: int) -> list[tuple[str, str]]:
        return [
            (self.namespace(node), self._veth(node, "c")),
            (self.bridge_namespace, self._veth(node, "b")),
        ]

    async def heal(self, node: int) -> None:
        await asyncio.to_thread(self._heal, node)

    def _heal(self, node: int) -> None:
        if node in self._partitioned:
            self._partitioned.discard(node)
            for peer in self.node_ids:
                if peer == node or peer in self._partitioned:
                    continue  # a peer still partitioned itself stays cut off from everyone
                for here, there in ((node, peer), (peer, node)):
                    self._quietly(["ip", "-n", self.namespace(here), "neigh", "del", self.address(there), "dev", self._veth(here, "c")])  # fmt: skip
        for ns, dev in self._ends(node):
            self._quietly(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"])

    def _quietly(self, args: Sequence[str]) -> None:
        with contextlib.suppress(NetnsError):  # nothing to undo
            self._run(args)

    async def close(self) -> None:
        return None


def host_ipv4_addresses() -> list[str]:
    """The IPv4 addresses of the machine's (root namespace's) interfaces."""
    done = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=False
    )
    addresses = []
    for line in done.stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            addresses.append(fields[fields.index("inet") + 1].split("/")[0])
    return addresses
