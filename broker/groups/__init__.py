"""The group coordinator: consumer groups (KIP-848) and committed offsets, over the internal
topic ``__consumer_offsets``.

- ``api``: the contract between the sans-I/O shard (one per ``__consumer_offsets`` partition
  this broker leads) and the asyncio runtime that loads, writes and serves it.
"""
