"""The rules about which values a partition holds and where: lost writes, vanished values,
duplicates, offset mismatches and reads of values that were never (successfully) sent.

Each rule looks at one :class:`PartitionHistory` and reports one anomaly per value (or, for offset
mismatches, per offset), so a fault that spoils many records shows as many anomalies. The rules
are independent: one fault can break several (an acknowledged value missing from the final read
that a poll had returned is both a lost write and a vanished value).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from raftka.common.ids import Offset
from raftka.ops.experiments.history import Operation, Outcome
from raftka.ops.experiments.result import Anomaly, AnomalyKind
from raftka.ops.experiments.views import PartitionHistory


def lost_writes(view: PartitionHistory) -> list[Anomaly]:
    """Acknowledged sends whose value the final read does not hold. Without a final read
    nothing can be called lost (the partition is reported as unchecked instead)."""
    final = view.final
    if final is None:
        return []
    found = []
    for send in view.sends:
        if send.outcome is not Outcome.OK or send.value in view.final_offsets:
            continue
        assert send.value is not None and send.offset is not None
        earlier = view.read_offsets.get(send.value)
        seen = f"; it had been read at offset {_list(earlier)}" if earlier else ""
        found.append(
            Anomaly(
                AnomalyKind.LOST_WRITE,
                view.partition,
                (send.value,),
                (send.offset,),
                f"{send.value!r} was acknowledged at offset {send.offset} to process "
                f"{send.process} but the final read of {view.partition} "
                f"({len(final.records)} records) does not hold it{seen}",
                send.process,
            )
        )
    return found


def vanished(view: PartitionHistory, sends: Mapping[str, Operation]) -> list[Anomaly]:
    """Values a read returned that the final read no longer holds. Values whose send failed or
    never reached this partition are left to :func:`unacknowledged_reads`: their absence from
    the final read is right, the earlier read was the anomaly."""
    if view.final is None:
        return []
    found = []
    for value, offsets in view.read_offsets.items():
        send = sends.get(value)
        if value in view.final_offsets or send is None or send.partition != view.partition:
            continue
        if send.outcome is Outcome.FAIL:
            continue
        reader = view.first_read[value]
        found.append(
            Anomaly(
                AnomalyKind.VANISHED,
                view.partition,
                (value,),
                _sorted(offsets),
                f"{value!r} was read at offset {_list(offsets)} of {view.partition} (first by "
                f"process {reader.process}'s {reader.kind.value} completed at "
                f"{reader.complete_time}) but the final read does not hold it",
                reader.process,
            )
        )
    return found


def duplicates(view: PartitionHistory) -> list[Anomaly]:
    """Values read at more than one offset (in the final read or across any reads)."""
    return [
        Anomaly(
            AnomalyKind.DUPLICATE,
            view.partition,
            (value,),
            _sorted(offsets),
            f"{value!r} is in {view.partition} more than once: at offsets {_list(offsets)}",
        )
        for value, offsets in view.read_offsets.items()
        if len(offsets) > 1
    ]


def offset_mismatches(view: PartitionHistory) -> list[Anomaly]:
    """Offsets that reads and acknowledgements give different values (Jepsen's inconsistent
    offsets), and acknowledged values that are read only at offsets other than their own."""
    acked: dict[Offset, list[str]] = {}
    for send in view.sends:
        if send.outcome is Outcome.OK:
            assert send.value is not None and send.offset is not None
            acked.setdefault(send.offset, []).append(send.value)
    found = []
    for offset in sorted(view.read_values.keys() | acked.keys()):
        read = view.read_values.get(offset, set())
        acked_here = acked.get(offset, [])
        values = sorted(read.union(acked_here))
        if len(values) < 2:
            continue
        sources = ", ".join(f"{v!r} ({'+'.join(_sources(v, read, acked_here))})" for v in values)
        found.append(
            Anomaly(
                AnomalyKind.OFFSET_MISMATCH,
                view.partition,
                tuple(values),
                (offset,),
                f"offset {offset} of {view.partition} holds different values: {sources}",
            )
        )
    for offset, values in acked.items():
        if offset in view.read_values:
            continue  # what was read there is compared above
        for value in values:
            where = view.read_offsets.get(value)
            if where:
                found.append(
                    Anomaly(
                        AnomalyKind.OFFSET_MISMATCH,
                        view.partition,
                        (value,),
                        (offset, *_sorted(where)),
                        f"{value!r} was acknowledged at offset {offset} of {view.partition} "
                        f"but read at offset {_list(where)}",
                    )
                )
    return found


def unacknowledged_reads(view: PartitionHistory, sends: Mapping[str, Operation]) -> list[Anomaly]:
    """Reads of a value that was never sent to this partition, whose send failed definitely, or
    that a read returned before its send was even invoked."""
    found = []
    for value, offsets in view.read_offsets.items():
        send = sends.get(value)
        reader = view.first_read[value]
        if send is None:
            why = "was never sent"
        elif send.partition != view.partition:
            why = f"was sent to {send.partition}, not here"
        elif send.outcome is Outcome.FAIL:
            detail = f" ({send.error})" if send.error else ""
            why = f"was sent by process {send.process} but that send failed{detail}"
        elif reader.complete_time < send.invoke_time:
            why = (
                f"was read by process {reader.process} at {reader.complete_time}, before "
                f"process {send.process} began sending it at {send.invoke_time}"
            )
        else:
            continue
        found.append(
            Anomaly(
                AnomalyKind.UNACKNOWLEDGED_READ,
                view.partition,
                (value,),
                _sorted(offsets),
                f"{value!r} read at offset {_list(offsets)} of {view.partition} {why}",
                reader.process,
            )
        )
    return found


def _sources(value: str, read: set[str], acked: list[str]) -> list[str]:
    return [name for name, there in (("acked", value in acked), ("read", value in read)) if there]


def _sorted(offsets: Iterable[Offset]) -> tuple[Offset, ...]:
    return tuple(sorted(offsets))


def _list(offsets: Iterable[Offset]) -> str:
    return ", ".join(str(o) for o in sorted(offsets))
