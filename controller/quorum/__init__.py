"""The quorum runtime: drives the sans-I/O Raft core with real disks, timers and gRPC."""
