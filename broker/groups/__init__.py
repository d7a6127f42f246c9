"""The group coordinator: consumer groups (KIP-848) and committed offsets, over the internal
topic ``__consumer_offsets``.

- ``api``: the contract between the sans-I/O shard (one per ``__consumer_offsets`` partition
  this broker leads) and the asyncio runtime that loads, writes and serves it.
- ``shard``: ``ConsumerGroupShard``, the sans-I/O implementation of that contract.
- ``records``: the record format of ``__consumer_offsets`` (``GroupRecordError`` on replay of
  a record this version cannot read); ``state`` / ``store``: what the records build;
  ``batch``: live writes, applied through the replay path.
- ``validation``, ``heartbeat``, ``rebalance``, ``assignors``, ``reconcile``, ``tracker``: the
  membership protocol; ``offsets`` and ``admin``: commits, fetches, listing, deletion.
"""
