"""What islesbench writes and reads back on disk, one module per format: TFRecords (records), the
prepared data's manifest, folds and patients (manifest), the runs folder (run_layout), what produced a
result (provenance), what a fold's training resolved to (training_facts), `islesbench pretrain`'s records
(pretrain_records), what a run's config.json says was chosen on or had seen its scored cases (selection) and
per-epoch history files (history).

May import: the core, islesbench.runtime, islesbench.imaging.
"""
