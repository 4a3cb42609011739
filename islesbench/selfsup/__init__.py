"""islesbench.selfsup."""
