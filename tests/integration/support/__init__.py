"""Shared support for integration tests against real processes on 127.0.0.1: one module
per kind of helper."""
