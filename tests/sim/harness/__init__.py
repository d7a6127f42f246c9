"""A seeded, replayable simulator for whole Raft clusters in one process.

Modules: ``network`` (lossy, duplicating, delaying, reordering, partitionable links),
``storage`` (durable state behind a write buffer lost on crash), ``state_machine`` (an
append-only list with snapshots), ``node`` (the runtime loop around one RaftNode, with armed
crash points), ``cluster`` (virtual clock, event queue, fsync latency, faults, helpers),
``invariants`` (safety checks after every event), ``faults`` (random fault schedules for the
seed sweep) and ``script`` (helpers for message-by-message tests of single nodes).
"""
