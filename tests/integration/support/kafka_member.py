"""One confluent-kafka consumer-group member (KIP-848, ``group.protocol=consumer``) in a
process of its own, for tests that kill members: ``python -m
tests.integration.support.kafka_member BOOTSTRAP GROUP TOPIC``.

It prints one JSON line per fact, flushed at once: ``{"assigned": [partitions]}`` whenever its
assignment changes, ``{"record": [partition, offset, value]}`` for each record and
``{"committed": [partition, next_offset]}`` once that record's offset is committed
(synchronously, one by one). A line on stdin (or its end) makes it close and leave."""

from __future__ import annotations

import json
import sys
import threading

from confluent_kafka import Consumer


def say(**fact: object) -> None:
    sys.stdout.write(json.dumps(fact) + "\n")
    sys.stdout.flush()


def main(bootstrap: str, group: str, topic: str) -> None:
    stop = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    owned: list[int] | None = None
    try:
        while not stop.is_set():
            message = consumer.poll(0.1)
            now = sorted(tp.partition for tp in consumer.assignment())
            if now != owned:
                owned = now
                say(assigned=now)
            if message is None:
                continue
            if message.error() is not None:
                say(error=str(message.error()))
                continue
            partition, offset = message.partition(), message.offset()
            value = (message.value() or b"").decode()
            say(record=[partition, offset, value])
            consumer.commit(message=message, asynchronous=False)
            say(committed=[partition, (offset or 0) + 1])
    finally:
        consumer.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
