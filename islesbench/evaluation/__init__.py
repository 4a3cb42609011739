"""islesbench.evaluation."""
