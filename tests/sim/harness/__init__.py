"""A seeded, replayable simulator for whole Raft clusters in one process.

Modules: ``network`` (lossy, reordering, partitionable links), ``storage`` (durable state with
a write buffer lost on crash), ``state_machine`` (an append-only list with snapshots),
``node`` (the runtime loop around one RaftNode), ``cluster`` (virtual clock, event queue,
faults, helpers), ``invariants`` (safety checks after every event), ``faults`` (random fault
schedules for the seed sweep).
"""
