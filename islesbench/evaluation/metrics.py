"""Every ISLES challenge metric of one case: `case_metrics`.

Every number the benchmark reports comes from this function and the modules it calls, one per family.
Pure NumPy/SciPy (no TensorFlow, no ITK or VTK). Per case, whole volume, millimetres from the voxel spacing:

- overlap (`islesbench.evaluation.overlap`): ``dice``, ``precision``, ``recall``, ``avd_ml``,
  ``avd_rel``, ``ref_volume_ml``, ``pred_volume_ml``;
- surface distances (`islesbench.evaluation.surface`): ``hd`` and ``assd`` under the convention the
  caller names (``isles``, the ISLES 2015–2018 evaluator's, by default; or ``medpy``), recorded in the
  row's ``convention``; ``hd95`` and ``assd_pooled`` (medpy's in both conventions); ``nsd_1mm``,
  ``nsd_2mm`` (normalised surface Dice);
- lesion-wise (`islesbench.evaluation.lesions`, 26-connected components): ``lesion_tp``, ``lesion_fp``,
  ``lesion_fn``, ``lesion_f1`` and ``lesion_count_diff`` as ISLES'22 computes them; ``lesion_f1_iou50``
  and ``lesion_f1_iou20`` as the ISLES'24 script computes it through panoptica (one-to-one matches at
  IoU ≥ 0.5, as scored in the 2024 challenge, and at IoU ≥ 0.2, its rule since 2025-12-16).

Empty masks (`islesbench.evaluation.names.EMPTY_CONVENTIONS`):

- both empty: dice, precision, recall, nsd, lesion F1s = 1; distances = 0; avd = 0; counts 0.
- exactly one empty: dice = precision = recall = nsd = 0, distances = ``inf``; avd_rel = ``inf`` when
  the reference is empty; lesion counts as defined (so both lesion F1s = 0).

Speed: both masks are cropped to the bounding box of their union plus a one-voxel margin, clipped to the
volume (`islesbench.evaluation.overlap.crop_to_union`), which is exact for every metric.
"""

from __future__ import annotations

import math

import numpy as np

from islesbench.errors import IslesbenchError
from islesbench.evaluation.lesions import lesion_detection
from islesbench.evaluation.names import CONVENTION_KEY, DEFAULT_CONVENTION, METRIC_NAMES, check_convention
from islesbench.evaluation.overlap import CROP_MARGIN, crop_to_union, overlap_metrics
from islesbench.evaluation.surface import distance_metrics, nsd_metrics


def case_metrics(pred: np.ndarray, ref: np.ndarray, spacing, convention: str = DEFAULT_CONVENTION) -> dict:
    """Every metric of one case (see the module docstring).

    Args:
        pred: (X, Y, Z) mask, the prediction; anything nonzero is lesion (2-D masks give NaN NSD).
        ref: mask of `pred`'s shape, the reference; anything nonzero is lesion.
        spacing: (3,) voxel size in mm, one positive finite value per axis of the masks.
        convention: the definition of ``hd`` and ``assd``, one of `islesbench.evaluation.names.CONVENTIONS`.

    Returns:
        {metric: value} keyed by `METRIC_NAMES` in order, then ``convention``: distances in mm, volumes
        in mL, ``avd_rel`` a ratio, Dice-like metrics and F1s in [0, 1] (floats), lesion counts ints.
        An IslesbenchError for an unknown convention, shapes that differ, or a bad spacing.
    """
    check_convention(convention)
    pred = np.asarray(pred).astype(bool, copy=False)
    ref = np.asarray(ref).astype(bool, copy=False)
    if pred.shape != ref.shape:
        raise IslesbenchError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != ref.ndim:
        raise IslesbenchError(f"spacing {spacing} has {len(spacing)} values for a {ref.ndim}D mask")
    if not all(s > 0 and math.isfinite(s) for s in spacing):
        raise IslesbenchError(f"spacing {spacing} must be positive and finite")

    pred, ref = crop_to_union(pred, ref, CROP_MARGIN)
    out = overlap_metrics(pred, ref, spacing)
    out.update(distance_metrics(pred, ref, spacing, convention))
    out.update(nsd_metrics(pred, ref, spacing))
    out.update(lesion_detection(pred, ref))
    return {**{name: out[name] for name in METRIC_NAMES}, CONVENTION_KEY: convention}
