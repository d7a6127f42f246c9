"""Raftka broker: partitions, replication and the broker gRPC service (see issue 3)."""
