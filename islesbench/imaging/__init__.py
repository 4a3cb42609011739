"""islesbench.imaging."""
