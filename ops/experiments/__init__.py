"""Failover experiments: recorded histories of sends and reads, and the checker that finds
anomalies in them (lost, duplicated, reordered or phantom records).

``history`` holds the model and its JSON-lines format, ``result`` the anomalies a check reports,
``checker`` the rules (``python -m raftka.ops.experiments.checker history.jsonl`` re-checks a
saved history). Nothing here does I/O beyond loading and saving a history.
"""
