"""Client quotas on real processes: a producer over its byte rate is held to it, within 10%
over 30 s, while another producer on the same broker is not throttled (issue 13); a consumer
over its fetch byte rate likewise.

One controller and one broker: quotas are per broker, so one is enough.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.client.admin import AsyncAdmin
from raftka.client.consumer import AsyncConsumer
from raftka.client.producer import AsyncProducer
from raftka.client.types import RecordMetadata, TopicPartition
from raftka.ops.local_cluster import LocalCluster
from tests.conditions import eventually
from tests.integration.support.brokers import (
    start_broker_cluster,
    stop_broker_cluster,
    wait_partition_leaders,
)
from tests.integration.support.quorum import client_for, create_topic

pytestmark = pytest.mark.integration

QUOTA = 200 * 1024
"""Bytes per second."""
VALUE = b"q" * 4000
RUN_S = 30.0
TOPIC = "quota-produce"


@pytest.fixture(scope="module")
def qcluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_broker_cluster(tmp_path_factory.mktemp("quotas"), controllers=1, brokers=1)
    try:
        yield c
    finally:
        stop_broker_cluster(c)


async def quotas_in_force(cluster: LocalCluster, probe_client_id: str) -> None:
    """Until the broker throttles ``probe_client_id`` (whose quota was set with the others, so
    they are all in the broker's image by then)."""
    async with AsyncProducer(
        bootstrap_servers=cluster.bootstrap_servers, client_id=probe_client_id, linger_ms=0
    ) as probe:

        async def throttled() -> bool | None:
            await probe.send_and_wait(TOPIC, b"p" * 3000)
            return True if probe.throttle.throttled_responses else None

        await eventually(throttled, timeout_s=20, what=f"{probe_client_id} throttled")


async def produce_for(producer: AsyncProducer, seconds: float, value: bytes = VALUE) -> int:
    """Send as fast as the producer takes records for ``seconds``; return the value bytes
    acknowledged within them."""
    acked = 0
    end = time.monotonic() + seconds

    def count(future: asyncio.Future[RecordMetadata]) -> None:
        nonlocal acked
        if not future.cancelled() and future.exception() is None and time.monotonic() <= end:
            acked += len(value)

    while time.monotonic() < end:
        future = await producer.send(TOPIC, value)
        future.add_done_callback(count)
    return acked  # an answer whose callback has not run yet is not counted: a few records


def test_a_producer_over_its_byte_rate_is_held_to_it_and_others_are_not(
    qcluster: LocalCluster,
) -> None:
    async def main() -> None:
        async with client_for(qcluster) as client:
            await create_topic(client, TOPIC, partitions=1, rf=1)
        await wait_partition_leaders(qcluster, TOPIC, 1)
        async with AsyncAdmin(qcluster.bootstrap) as admin:
            await admin.alter_client_quotas({"client-id": "slow"}, {"producer_byte_rate": QUOTA})
            await admin.alter_client_quotas({"client-id": "probe"}, {"producer_byte_rate": 1000})
            (entry,) = await admin.describe_client_quotas({"client-id": "slow"})
            assert entry.values == {"producer_byte_rate": QUOTA}
        await quotas_in_force(qcluster, "probe")

        slow = AsyncProducer(
            bootstrap_servers=qcluster.bootstrap_servers,
            client_id="slow",
            batch_size=16 * 1024,
            buffer_memory=256 * 1024,
            linger_ms=0,
        )
        fast = AsyncProducer(bootstrap_servers=qcluster.bootstrap_servers, client_id="fast")
        async with slow, fast:
            slow_bytes, fast_bytes = await asyncio.gather(
                # The fast one sends large records, leaving this process some CPU for the slow one
                # (both share one event loop): it is the broker's throttle that is measured.
                produce_for(slow, RUN_S),
                produce_for(fast, RUN_S, b"f" * 32768),
            )
            slow_rate, fast_rate = slow_bytes / RUN_S, fast_bytes / RUN_S
            print(
                f"quota {QUOTA} B/s: slow {slow_rate:.0f} B/s ({slow_rate / QUOTA:.3f}x), "
                f"fast {fast_rate:.0f} B/s ({fast_rate / QUOTA:.1f}x); slow throttle "
                f"{slow.throttle.as_dict()}, fast throttle {fast.throttle.as_dict()}"
            )
            assert abs(slow_rate / QUOTA - 1) <= 0.10
            assert slow.throttle.throttled_responses > 0
            assert fast.throttle.throttled_responses == 0
            assert fast_rate > 3 * QUOTA
            await slow.close(timeout_s=0)

    asyncio.run(main())


def test_a_consumer_over_its_byte_rate_is_held_to_it_and_others_are_not(
    qcluster: LocalCluster,
) -> None:
    """Runs after the produce test: the topic holds far more than either consumer reads here.
    Shorter than the produce test (12 s), so the first window's allowance weighs more."""
    seconds = 12.0
    tp = TopicPartition(TOPIC, 0)

    async def read_for(consumer: AsyncConsumer) -> int:
        nbytes = 0
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            records = await consumer.poll(timeout_ms=min(left, 0.5) * 1000)
            nbytes += sum(len(r.value or b"") for r in records)
        return nbytes

    async def main() -> None:
        async with AsyncAdmin(qcluster.bootstrap) as admin:
            await admin.alter_client_quotas(
                {"client-id": "slow-reader"}, {"consumer_byte_rate": QUOTA}
            )
            await admin.alter_client_quotas({"client-id": "probe-2"}, {"producer_byte_rate": 1000})
        await quotas_in_force(qcluster, "probe-2")
        servers = qcluster.bootstrap_servers
        async with (
            AsyncConsumer(bootstrap_servers=servers, client_id="slow-reader") as slow,
            AsyncConsumer(bootstrap_servers=servers, client_id="fast-reader") as fast,
        ):
            slow_bytes, fast_bytes = await asyncio.gather(read_for(slow), read_for(fast))
            slow_rate, fast_rate = slow_bytes / seconds, fast_bytes / seconds
            print(
                f"quota {QUOTA} B/s: slow reader {slow_rate:.0f} B/s "
                f"({slow_rate / QUOTA:.3f}x), fast reader {fast_rate:.0f} B/s "
                f"({fast_rate / QUOTA:.1f}x); slow throttle {slow.throttle.as_dict()}"
            )
            assert abs(slow_rate / QUOTA - 1) <= 0.20
            assert slow.throttle.throttled_responses > 0
            assert fast.throttle.throttled_responses == 0
            assert fast_rate > 3 * QUOTA

    asyncio.run(main())


def test_the_quotas_command_sets_lists_and_removes(qcluster: LocalCluster, tmp_path: Path) -> None:
    controllers = ["--bootstrap-controller", ",".join(qcluster.bootstrap)]

    def raftka(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "raftka.client.cli", "quotas", *args, *controllers],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    done = raftka("set", "--user", "alice", "--client-id", "app", "--producer-byte-rate", "1048576")
    assert done.returncode == 0, done.stderr
    assert "set producer_byte_rate=1048576 for client-id=app user=alice" in done.stdout
    assert raftka("set", "--default-user", "--request-percentage", "12.5").returncode == 0
    listed = raftka("list", "--user", "alice")
    assert "client-id=app user=alice  producer_byte_rate=1048576" in listed.stdout
    assert "user=<default>" not in listed.stdout
    assert "user=<default>  request_percentage=12.5" in raftka("list", "--default-user").stdout
    refused = raftka("set", "--user", "bob", "--producer-byte-rate", "0")
    assert refused.returncode == 1 and "INVALID_REQUEST" in refused.stderr
    assert "above 0" in refused.stderr
    assert raftka("set", "--producer-byte-rate", "5").returncode == 1  # no entity
    assert raftka("remove", "--user", "alice", "--client-id", "app").returncode == 0
    assert raftka("list", "--user", "alice").stdout.strip() == "no quotas"
