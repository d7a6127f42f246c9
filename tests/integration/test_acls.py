"""ACLs on real controllers: created with ``raftka acls`` and the admin client, replicated to
every controller identically, kept through metadata snapshots and a restart, deleted by filter."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.client.acl_admin import AclAdmin, DescribedAcl
from raftka.client.admin import AsyncAdmin
from raftka.common.data_dir import METADATA_LOG_DIR
from raftka.common.security.acl_filters import AclFilter
from raftka.common.security.model import (
    ALLOW,
    DENY,
    LITERAL,
    OP_READ,
    OP_WRITE,
    RESOURCE_GROUP,
    RESOURCE_TOPIC,
    Acl,
)
from raftka.ops.local_cluster import LocalCluster
from tests.conditions import eventually
from tests.integration.support.brokers import log_events
from tests.integration.support.quorum import FAST_CONTROLLER, client_for, leader_of

pytestmark = pytest.mark.integration


@pytest.fixture
def secured_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Three controllers with the authorizer on, snapshotting every couple of KiB of log."""
    c = LocalCluster(
        tmp_path / "cluster",
        controllers=3,
        controller_settings={**FAST_CONTROLLER, "snapshot_after_bytes": 2048},
        # Plaintext: every caller, the controllers among themselves included, is anonymous,
        # so only a super-user ANONYMOUS lets the quorum work (test_security_attacks.py runs
        # the authorizer with mTLS node identities).
        security_settings={"authorizer_enable": True, "super_users": "User:ANONYMOUS"},
    )
    c.prepare()
    c.start()
    try:
        yield c
    finally:
        c.stop_all()
        for node_id in c.nodes:
            print(f"--- node {node_id} log tail ---\n{c.log_tail(node_id, 15)}")


def raftka(cluster: LocalCluster, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "raftka.client.cli", "acls", *args,
         "--bootstrap-controller", ",".join(cluster.bootstrap), "--timeout", "20"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def acls_on(cluster: LocalCluster, node_id: int) -> list[DescribedAcl]:
    """What one controller has in its own committed metadata."""
    async with client_for(cluster, node_id, timeout_s=5.0) as client:
        return await AclAdmin(client).describe(any_controller=True)


async def all_agree(cluster: LocalCluster, expected: list[DescribedAcl]) -> None:
    for node_id in cluster.nodes:

        async def same(node_id: int = node_id) -> bool | None:
            return True if await acls_on(cluster, node_id) == expected else None

        await eventually(same, timeout_s=20, what=f"controller {node_id} has the ACLs")


def test_acls_replicate_survive_snapshots_and_restarts_and_delete_by_filter(
    secured_cluster: LocalCluster,
) -> None:
    cluster = secured_cluster

    # ---- the command line ----
    added = raftka(cluster, "add", "--allow-principal", "User:alice", "--operation", "write",
                   "--operation", "read", "--topic", "orders")  # fmt: skip
    assert "User:alice" in added and "WRITE" in added and "READ" in added
    raftka(cluster, "add", "--deny-principal", "User:mallory", "--host", "10.0.0.7",
           "--operation", "all", "--topic", "pay", "--resource-pattern-type", "prefixed")  # fmt: skip
    listed = raftka(cluster, "list", "--topic", "orders")
    assert listed.count("User:alice") == 2 and "mallory" not in listed
    matching = raftka(cluster, "list", "--topic", "payments", "--resource-pattern-type", "match")
    assert "User:mallory" in matching and "PREFIXED" in matching and "DENY" in matching

    async def main() -> None:
        leader = await leader_of(cluster)
        async with AsyncAdmin(cluster.bootstrap, timeout_s=20) as admin:
            # Enough metadata to make every controller snapshot (2 KiB of log).
            for i in range(12):
                await admin.create_acls(
                    [
                        Acl(
                            RESOURCE_GROUP,
                            f"group-{i}",
                            LITERAL,
                            f"User:bob{j}",
                            "*",
                            OP_READ,
                            ALLOW,
                        )
                        for j in range(5)
                    ]
                )
            # Creating an ACL that exists answers its id and adds nothing.
            alice = Acl(RESOURCE_TOPIC, "orders", LITERAL, "User:alice", "*", OP_WRITE, ALLOW)
            before = await admin.describe_acls()
            (alice_id,) = await admin.create_acls([alice])
            assert DescribedAcl(alice_id, alice) in before
            assert await admin.describe_acls() == before
            assert len(before) == 3 + 60

        await all_agree(cluster, before)
        for node_id in cluster.nodes:

            async def snapshotted(node_id: int = node_id) -> bool | None:
                return True if log_events(cluster, node_id, "snapshot_taken") else None

            await eventually(snapshotted, timeout_s=20, what=f"controller {node_id} snapshots")
            metadata_dir = cluster.nodes[node_id].data_dir / METADATA_LOG_DIR
            assert list(metadata_dir.glob("*.checkpoint"))

        # A restarted controller (leader or not) rebuilds the same ACLs from its snapshot.
        for node_id in (next(n for n in cluster.nodes if n != leader), leader):
            cluster.stop(node_id)
            cluster.start(node_id)
            await all_agree(cluster, before)

        # Delete by filter: every ACL of the bob* principals on group-1 and group-2.
        async with AsyncAdmin(cluster.bootstrap, timeout_s=20) as admin:
            removed = await admin.delete_acls(
                AclFilter(resource_type=RESOURCE_GROUP, resource_name="group-1"),
                AclFilter(resource_type=RESOURCE_GROUP, resource_name="group-2", permission=DENY),
            )
            assert {d.acl.resource_name for d in removed} == {"group-1"} and len(removed) == 5
            after = await admin.describe_acls()
        assert after == [d for d in before if d not in removed]
        await all_agree(cluster, after)

    asyncio.run(main())

    removed_text = raftka(cluster, "remove", "--principal", "User:mallory")
    assert "removed 1 ACL(s)" in removed_text and "User:mallory" in removed_text
    assert "no ACLs match" in raftka(cluster, "list", "--principal", "User:mallory")
    left = raftka(cluster, "list", "--operation", "all")
    assert "no ACLs match" in left, "mallory's was the only ALL ACL"
