"""Surface distances as medpy 0.5.2 computes them with ``connectivity=ndim``.

A mask's surface is the mask minus its binary erosion with the full 3^ndim neighbourhood, the outside
of the volume counting as background (so voxels on the volume border are surface). Distances from one
surface's voxels to the other surface are exact anisotropic Euclidean distances
(``scipy.ndimage.distance_transform_edt`` with ``sampling=spacing``). medpy's *default* is
``connectivity=1``, a 6-connected erosion, which gives different surfaces.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

CONVENTION = "medpy"


def surface(mask: np.ndarray) -> np.ndarray:
    """The one-voxel surface of a mask: the mask minus its erosion by the full 3^ndim neighbourhood.

    Args:
        mask: (X, Y, Z) bool mask (any number of axes); outside the volume counts as background.

    Returns:
        (X, Y, Z) bool mask of the surface voxels.
    """
    structure = np.ones((3,) * mask.ndim, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, iterations=1)


def surface_distance_maps(pred: np.ndarray, ref: np.ndarray, spacing) -> dict:
    """Both masks' surfaces and the distance map to each.

    Args:
        pred: (X, Y, Z) bool mask, the prediction.
        ref: (X, Y, Z) bool mask, the reference.
        spacing: (3,) voxel size in mm.

    Returns:
        {"pred_surface", "ref_surface"}: (X, Y, Z) bool masks; {"to_pred_surface", "to_ref_surface"}:
        (X, Y, Z) float64 exact Euclidean distance of every voxel to that surface, in mm.
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    pred_surface, ref_surface = surface(pred), surface(ref)
    return {
        "pred_surface": pred_surface,
        "ref_surface": ref_surface,
        "to_pred_surface": ndimage.distance_transform_edt(~pred_surface, sampling=spacing),
        "to_ref_surface": ndimage.distance_transform_edt(~ref_surface, sampling=spacing),
    }


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing, maps: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The directed surface distances of two non-empty masks, as medpy returns them.

    Args:
        pred: (X, Y, Z) bool mask, the prediction (non-empty).
        ref: (X, Y, Z) bool mask, the reference (non-empty).
        spacing: (3,) voxel size in mm.
        maps: `surface_distance_maps` of the same masks if the caller has it.

    Returns:
        (d_pred_to_ref, d_ref_to_pred): (N_pred,) and (N_ref,) float64 distances in mm from each
        surface voxel of one mask to the other's surface, voxels in C order.
    """
    maps = maps or surface_distance_maps(pred, ref, spacing)
    return maps["to_ref_surface"][maps["pred_surface"]], maps["to_pred_surface"][maps["ref_surface"]]


def medpy_distance_metrics(pred: np.ndarray, ref: np.ndarray, spacing, maps: dict | None = None) -> dict:
    """medpy's distance metrics of two non-empty masks.

    ``hd95`` is the 95th percentile (linear interpolation) of both directions pooled, as medpy's
    ``hd95``; ``assd_pooled`` is medpy ≥ 0.5's ``assd``, the mean of both directions pooled.

    Args:
        pred: (X, Y, Z) bool mask, the prediction (non-empty).
        ref: (X, Y, Z) bool mask, the reference (non-empty).
        spacing: (3,) voxel size in mm.
        maps: `surface_distance_maps` of the same masks if the caller has it.

    Returns:
        {"hd", "hd95", "assd" (mean of the two directed means), "assd_pooled"} in mm.
    """
    d_pr, d_rp = surface_distances(pred, ref, spacing, maps)
    both = np.concatenate((d_pr, d_rp))  # medpy's order: result→reference first
    return {
        "hd": float(max(d_pr.max(), d_rp.max())),
        "hd95": float(np.percentile(both, 95)),
        "assd": float((d_pr.mean() + d_rp.mean()) / 2.0),
        "assd_pooled": float(both.mean()),
    }
