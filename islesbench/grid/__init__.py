"""The benchmark grid: the grid file and its cells (islesbench.grid.grid_file), the cells that fine-tune
self-supervised encoders (selfsup_cells) and the runner that trains every cell and the nested ensemble
(runner). The report is written by islesbench.reports, which the `benchmark` command calls.

May import: the core, runtime, storage, layouts, data, inference, training, selfsup.
"""
