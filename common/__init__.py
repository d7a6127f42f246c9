"""Raftka shared building blocks: ids, errors, config, logging, rpc helpers, records, storage."""
