"""The metadata image: cluster state rebuilt by replaying committed metadata records."""
