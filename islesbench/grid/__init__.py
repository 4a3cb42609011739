"""islesbench.grid."""
