"""Raftka controller: the Raft core, the quorum runtime, the metadata image and the admin services."""
