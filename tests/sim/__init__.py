"""Deterministic simulation tests of the sans-I/O Raft core (controller/raft)."""
