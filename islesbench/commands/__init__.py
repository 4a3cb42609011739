"""islesbench.commands."""
