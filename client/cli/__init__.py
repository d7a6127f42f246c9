"""The ``raftka`` command line: ``main`` is the console script's entry point."""

from raftka.client.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
