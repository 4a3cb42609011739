"""islesbench.runtime."""
