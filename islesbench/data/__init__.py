"""islesbench.data."""
