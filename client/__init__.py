"""Raftka client library and the ``raftka`` command line."""
