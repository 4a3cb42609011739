"""Surface-distance metrics of one case under the HD/ASSD convention the caller names.

- ``hd`` and ``assd`` follow the **convention** (`islesbench.evaluation.names.CONVENTIONS`):

  * ``isles`` (default): the ISLES 2015–2018 evaluator's own HD and ASSD, the numbers the challenge
    ranked with (`islesbench.evaluation.surface_isles`: ball-boundary voxels against the 26-connected
    contour for HD; VTK contour points against the ball boundary, mean of the two directed means, for ASSD).
  * ``medpy``: medpy 0.5.2 with ``connectivity=3`` (`islesbench.evaluation.surface_medpy`): surfaces by a
    full 3×3×3 erosion, ``hd`` the maximum and ``assd`` the mean of the two directed mean distances.

- ``hd95`` and ``assd_pooled`` are medpy's in both conventions (ISLES scored neither): the 95th
  percentile of both directions pooled, and medpy ≥ 0.5's pooled ``assd``.
- ``nsd_1mm``, ``nsd_2mm``: normalised surface Dice at 1 and 2 mm (`islesbench.evaluation.surface_dice`).

Empty masks: both empty gives distances 0 and NSD 1; exactly one empty gives distances ``inf`` and NSD 0.
"""

from __future__ import annotations

import math

import numpy as np

from islesbench.evaluation.names import DISTANCE_METRICS
from islesbench.evaluation.surface_dice import NSD_TOLERANCES_MM, surface_dice
from islesbench.evaluation.surface_isles import isles_hd_assd
from islesbench.evaluation.surface_medpy import medpy_distance_metrics, surface_distance_maps


def distance_metrics(pred: np.ndarray, ref: np.ndarray, spacing, convention: str) -> dict:
    """hd, hd95, assd and assd_pooled of one case, ``hd`` and ``assd`` under `convention`.

    Args:
        pred: (X, Y, Z) bool mask, the prediction (any number of axes; cropping both masks with
            `islesbench.evaluation.overlap.crop_to_union` leaves the values unchanged).
        ref: bool mask of `pred`'s shape, the reference.
        spacing: (3,) voxel size in mm, one value per axis of the masks.
        convention: "isles" or "medpy" (`islesbench.evaluation.names.CONVENTIONS`), already checked.

    Returns:
        {"hd", "hd95", "assd", "assd_pooled"} in mm: 0 when both masks are empty, ``inf`` when exactly
        one is, NaN for the ISLES hd/assd of a mask that fills the whole volume.
    """
    has_pred, has_ref = bool(np.any(pred)), bool(np.any(ref))
    if not has_pred and not has_ref:
        return {name: 0.0 for name in DISTANCE_METRICS}
    if not has_pred or not has_ref:
        return {name: math.inf for name in DISTANCE_METRICS}
    maps = surface_distance_maps(pred, ref, spacing)
    out = medpy_distance_metrics(pred, ref, spacing, maps)
    if convention == "isles":
        known = [(maps["pred_surface"], maps["to_pred_surface"]), (maps["ref_surface"], maps["to_ref_surface"])]
        out.update(isles_hd_assd(pred, ref, spacing, known))
    return out


def nsd_metrics(pred: np.ndarray, ref: np.ndarray, spacing) -> dict:
    """Normalised surface Dice of one case at 1 and 2 mm (`NSD_TOLERANCES_MM`).

    Args:
        pred: (X, Y, Z) bool mask, the prediction.
        ref: (X, Y, Z) bool mask, the reference.
        spacing: (3,) voxel size in mm.

    Returns:
        {"nsd_1mm", "nsd_2mm"}, fractions of surface area in [0, 1]; NaN for masks that are not 3-D
        (surfels are defined on 3-D cubes).
    """
    if ref.ndim != 3:
        return {"nsd_1mm": math.nan, "nsd_2mm": math.nan}
    nsd_1mm, nsd_2mm = surface_dice(pred, ref, spacing, NSD_TOLERANCES_MM)
    return {"nsd_1mm": nsd_1mm, "nsd_2mm": nsd_2mm}
