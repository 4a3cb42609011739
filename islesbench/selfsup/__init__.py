"""Self-supervised pretraining of PSPNet's encoder (Models Genesis restoration) on unlabelled CTP maps,
per fold without that fold's validation patients (islesbench.selfsup.pretrain).

May import: the core, runtime, imaging, storage, layouts, data, models, training.
"""
