"""Partition replication: the leader's view of its followers (ISR, high watermark), follower fetching, acks=all waits."""
