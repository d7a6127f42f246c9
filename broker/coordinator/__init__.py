"""What the group and the transaction coordinators share: a runtime that loads one sans-I/O
shard per led partition of an internal topic and writes its records (``runtime``), the
replicated log of that topic (``internal_log``), and its creation on first use
(``internal_topic``)."""
