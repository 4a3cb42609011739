"""Intensity normalisation and in-plane resampling, forward and inverse.

Chosen so that every cohort (scanners scale perfusion maps differently) reaches the network on one
scale, and so that training, prediction and evaluation undo it exactly:

* CT_CBF, CT_CBV: divided by the median over brain parenchyma of the same case (relative maps, as
  clinical rules such as rCBF < 30 % use them), clipped to [0, 5].
* CT_MTT, CT_Tmax: seconds divided by 10, clipped to [0, 4] (40 s).
* CT: HU window [-20, 120] centred at 40, divided by 40.
* anything else: divided by its brain median, clipped to [0, 5].

Brain parenchyma is where the CBF map is positive (ISLES maps are zero outside the brain) and the CT
baseline lies within 15–60 HU (which excludes CSF and bone); either alone when the other is absent. The per-case parameters are stored in the manifest.

In-plane, each slice is resampled to a square grid (GRID, default 256) with linear interpolation; the
slice axis is never resampled (thin slabs keep their slices). `from_grid` undoes it for probability maps.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

RULES = {
    "CT_CBF": {"kind": "brain_median", "lo": 0.0, "hi": 5.0},
    "CT_CBV": {"kind": "brain_median", "lo": 0.0, "hi": 5.0},
    "CT_MTT": {"kind": "fixed", "offset": 0.0, "scale": 10.0, "lo": 0.0, "hi": 40.0},
    "CT_Tmax": {"kind": "fixed", "offset": 0.0, "scale": 10.0, "lo": 0.0, "hi": 40.0},
    "CT": {"kind": "fixed", "offset": 40.0, "scale": 40.0, "lo": -20.0, "hi": 120.0},
}
DEFAULT_RULE = {"kind": "brain_median", "lo": 0.0, "hi": 5.0}
PARENCHYMA_HU = (15.0, 60.0)


def describe_rules() -> dict:
    """The normalisation rules, for the manifest."""
    return {"rules": RULES, "default": DEFAULT_RULE, "parenchyma_hu": list(PARENCHYMA_HU)}


def brain_mask(volumes: dict) -> np.ndarray:
    """Parenchyma voxels: CT within PARENCHYMA_HU, inside the perfusion maps' brain support (CBF > 0).

    ISLES perfusion maps are zero outside the brain, which removes scalp and muscle (soft tissue in the
    same HU window); the CT window removes CSF and bone. Either alone is used when the other is absent.
    """
    shape = next(iter(volumes.values())).shape[:3]
    m = np.ones(shape, bool)
    if "CT_CBF" in volumes and (volumes["CT_CBF"] > 0).any():
        m &= volumes["CT_CBF"] > 0
    if "CT" in volumes:
        ct = volumes["CT"]
        windowed = m & (ct >= PARENCHYMA_HU[0]) & (ct <= PARENCHYMA_HU[1])
        if windowed.sum() > 100:
            m = windowed
    return m


def normalization_params(volumes: dict, modalities) -> dict:
    """Per-modality {offset, scale, lo, hi} for one case; lo/hi clip the raw values (before scaling)."""
    brain = None
    params = {}
    for mod in modalities:
        rule = RULES.get(mod, DEFAULT_RULE)
        if rule["kind"] == "fixed":
            params[mod] = {"offset": rule["offset"], "scale": rule["scale"], "lo": rule["lo"], "hi": rule["hi"]}
            continue
        if brain is None:
            brain = brain_mask(volumes)
        values = volumes[mod][brain]
        positive = values[values > 0]
        median = float(np.median(positive)) if positive.size else 1.0
        median = median if median > 0 else 1.0
        params[mod] = {"offset": 0.0, "scale": median, "lo": rule["lo"] * median, "hi": rule["hi"] * median}
    return params


def normalize(volumes: dict, modalities, params: dict) -> np.ndarray:
    """Stack the modalities as channels (X, Y, Z, C) float32, clipped and scaled by `params`."""
    channels = []
    for mod in modalities:
        p = params[mod]
        x = np.clip(volumes[mod].astype(np.float32), p["lo"], p["hi"])
        channels.append((x - np.float32(p["offset"])) / np.float32(p["scale"]))
    return np.stack(channels, axis=-1).astype(np.float32)


def denormalize(image: np.ndarray, modalities, params: dict) -> dict:
    """Invert `normalize`: channels back to each modality's clipped raw values."""
    return {mod: image[..., i] * np.float32(params[mod]["scale"]) + np.float32(params[mod]["offset"])
            for i, mod in enumerate(modalities)}


def to_grid(array: np.ndarray, grid: int, order: int = 1) -> np.ndarray:
    """Resample axes 0 and 1 of (X, Y, ...) to (grid, grid); other axes untouched."""
    x, y = array.shape[:2]
    if (x, y) == (grid, grid):
        return array.copy()
    factors = (grid / x, grid / y) + (1.0,) * (array.ndim - 2)
    out = ndimage.zoom(array, factors, order=order, mode="nearest", grid_mode=True)
    return out.astype(array.dtype, copy=False)


def mask_to_grid(mask: np.ndarray, grid: int) -> np.ndarray:
    """Resample a binary (X, Y, Z) mask to the grid: linear interpolation, then > 0.5."""
    return to_grid(mask.astype(np.float32), grid, order=1) > 0.5


def from_grid(array: np.ndarray, shape_xy: tuple, order: int = 1) -> np.ndarray:
    """Undo `to_grid`: resample axes 0 and 1 back to the case's original in-plane shape."""
    x, y = array.shape[:2]
    if (x, y) == tuple(shape_xy):
        return array.copy()
    factors = (shape_xy[0] / x, shape_xy[1] / y) + (1.0,) * (array.ndim - 2)
    out = ndimage.zoom(array, factors, order=order, mode="nearest", grid_mode=True)
    return out.astype(array.dtype, copy=False)


def grid_spacing(spacing, shape_xy, grid: int) -> tuple:
    """Voxel spacing (mm) after resampling the in-plane shape to the grid."""
    return (spacing[0] * shape_xy[0] / grid, spacing[1] * shape_xy[1] / grid, float(spacing[2]))


def case_to_records_arrays(volumes: dict, mask, modalities, params, grid: int):
    """Normalised image (Z, G, G, C) and mask (Z, G, G) uint8 on the grid, slice axis first."""
    image = to_grid(normalize(volumes, modalities, params), grid)
    image = np.moveaxis(image, 2, 0)
    if mask is None:
        m = np.zeros(image.shape[:3], np.uint8)
    else:
        m = np.moveaxis(mask_to_grid(mask, grid), 2, 0).astype(np.uint8)
    return np.ascontiguousarray(image), np.ascontiguousarray(m)
