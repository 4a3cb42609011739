"""The challenge metrics, by family: overlap (overlap), surface distances under each convention (surface:
surface_isles, surface_medpy, surface_dice), lesion-wise detection (lesions), all of one case (metrics:
`case_metrics`); their names (names); their aggregation over cases (aggregate); the metric files (files);
and evaluating a folder of predictions against reference masks (folders). NumPy and SciPy only.

May import: the core, islesbench.imaging, islesbench.storage, islesbench.layouts.
"""
