"""islesbench.training."""
