"""islesbench.storage."""
