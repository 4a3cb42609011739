"""Voxel-overlap metrics of one case: Dice, precision, recall and the volume differences.

- ``dice`` = 2|P∩R| / (|P|+|R|); ``precision`` = |P∩R|/|P|; ``recall`` = |P∩R|/|R|.
- ``avd_ml`` = |V_P − V_R| in mL (ISLES'22/'24 AVD); ``avd_rel`` = |V_P − V_R| / V_R.
- ``ref_volume_ml``, ``pred_volume_ml``: the two volumes in mL.

Empty masks: both empty gives dice = precision = recall = 1 and avd = 0; exactly one empty gives
dice = precision = recall = 0, and avd_rel = ``inf`` when the reference is the empty one.

Also the crop every metric of a case runs on (`crop_to_union`). Pure NumPy.
"""

from __future__ import annotations

import math

import numpy as np

CROP_MARGIN = 1


def crop_to_union(pred: np.ndarray, ref: np.ndarray, margin: int = CROP_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cropped to the bounding box of their union plus `margin` voxels, clipped to the volume.

    Exact for every metric of `islesbench.evaluation.metrics`: every surface voxel and every nearest
    partner lies inside the box, the margin keeps medpy's erosion and the ISLES neighbourhoods as on
    the full volume, and where the box meets the volume's border the border is the real one.

    Args:
        pred: (X, Y, Z) bool mask (any number of axes), the prediction.
        ref: bool mask of `pred`'s shape, the reference.
        margin: voxels added on every side of the union's bounding box.

    Returns:
        (pred, ref) as views of the same cropped shape; both of shape (0, …, 0) when both are empty.
    """
    union = pred | ref
    slices = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        hits = np.flatnonzero(np.any(union, axis=other))
        if hits.size == 0:  # both empty: nothing to crop to
            return pred[(slice(0, 0),) * pred.ndim], ref[(slice(0, 0),) * ref.ndim]
        lo = max(int(hits[0]) - margin, 0)
        hi = min(int(hits[-1]) + margin + 1, union.shape[axis])
        slices.append(slice(lo, hi))
    slices = tuple(slices)
    return pred[slices], ref[slices]


def overlap_metrics(pred: np.ndarray, ref: np.ndarray, spacing) -> dict:
    """Dice, precision, recall and the volumes of one case (see the module docstring).

    Args:
        pred: (X, Y, Z) bool mask, the prediction (any number of axes).
        ref: bool mask of `pred`'s shape, the reference.
        spacing: (3,) voxel size in mm, one value per axis of the masks.

    Returns:
        {"dice", "precision", "recall"} in [0, 1], {"avd_ml", "ref_volume_ml", "pred_volume_ml"} in mL and
        "avd_rel" (a ratio, ``inf`` when only the reference is empty), all floats.
    """
    n_pred = int(np.count_nonzero(pred))
    n_ref = int(np.count_nonzero(ref))
    n_inter = int(np.count_nonzero(pred & ref)) if n_pred and n_ref else 0
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return {
        "dice": _dice(n_inter, n_pred, n_ref),
        "precision": _ratio(n_inter, n_pred, both_empty=n_ref == 0),
        "recall": _ratio(n_inter, n_ref, both_empty=n_pred == 0),
        "avd_ml": abs(n_pred - n_ref) * voxel_ml,
        "avd_rel": _relative_volume_difference(n_pred, n_ref),
        "ref_volume_ml": n_ref * voxel_ml,
        "pred_volume_ml": n_pred * voxel_ml,
    }


def _dice(n_inter: int, n_pred: int, n_ref: int) -> float:
    if n_pred + n_ref == 0:
        return 1.0
    return 2.0 * n_inter / float(n_pred + n_ref)


def _ratio(num: int, den: int, both_empty: bool) -> float:
    """num/den; 1 when both masks are empty, 0 when only the denominator's mask is."""
    if den == 0:
        return 1.0 if both_empty else 0.0
    return num / float(den)


def _relative_volume_difference(n_pred: int, n_ref: int) -> float:
    if n_ref == 0:
        return 0.0 if n_pred == 0 else math.inf
    return abs(n_pred - n_ref) / float(n_ref)
