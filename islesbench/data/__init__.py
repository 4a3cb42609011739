"""Training input: the tf.data pipeline over the prepared records (islesbench.data.pipeline), augmentation
(augment), the seeded patient-level training fractions (fractions) and Models Genesis restoration pairs
(restoration_pairs).

May import: the core, islesbench.runtime, islesbench.imaging, islesbench.storage.
"""
