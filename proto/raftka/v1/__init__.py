"""Generated protobuf and gRPC stubs for the raftka.v1 wire contract (do not edit)."""
