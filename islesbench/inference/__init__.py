"""islesbench.inference."""
