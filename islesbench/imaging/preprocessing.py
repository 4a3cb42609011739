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

Orientation is read from each case's affine, never assumed: every case is reoriented (axis permutation
and flips only, nibabel's orientation tools) to one canonical orientation, CANONICAL_AXCODES = L, P, S
(voxel axis 0 runs to the patient's left, 1 to posterior, 2 to superior: the DICOM/ISLES 2018
convention, so an ISLES 2018 slab is usually unchanged), where axis 2 is the axial slice axis and axis 0
anatomical left-right. A voxel axis more than MAX_OBLIQUE_DEG from every anatomical axis is refused
(`orientation_fault`); a smaller tilt is handled (the nearest axes are taken; outputs keep the input's
own affine, so nothing is resampled for it).

In the canonical orientation, each slice is resampled to a square grid (default 256) with linear
interpolation, and the slice axis to a per-cohort target spacing (`slice_mm`, chosen by the layout and
stored in the manifest; None keeps every slice, as for ISLES 2018's thin slabs). `Sampling` records the
whole plan per case; `from_target` undoes it exactly (same shape, stored voxel order, so the input's
affine applies) for probability maps. `to_grid`/`from_grid` are the in-plane step alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from islesbench.errors import IslesbenchError

# nibabel imported inside functions only, so that `islesbench --help` and start-up stay fast.

RULES = {
    "CT_CBF": {"kind": "brain_median", "lo": 0.0, "hi": 5.0},
    "CT_CBV": {"kind": "brain_median", "lo": 0.0, "hi": 5.0},
    "CT_MTT": {"kind": "fixed", "offset": 0.0, "scale": 10.0, "lo": 0.0, "hi": 40.0},
    "CT_Tmax": {"kind": "fixed", "offset": 0.0, "scale": 10.0, "lo": 0.0, "hi": 40.0},
    "CT": {"kind": "fixed", "offset": 40.0, "scale": 40.0, "lo": -20.0, "hi": 120.0},
    # CTA: a wide window over parenchyma and contrast-filled vessels (HU), centred at 150.
    "CTA": {"kind": "fixed", "offset": 150.0, "scale": 150.0, "lo": -50.0, "hi": 500.0},
}
DEFAULT_RULE = {"kind": "brain_median", "lo": 0.0, "hi": 5.0}
PARENCHYMA_HU = (15.0, 60.0)
CANONICAL_AXCODES = ("L", "P", "S")
MAX_OBLIQUE_DEG = 30.0


def describe_rules() -> dict:
    """The normalisation rules, for the manifest."""
    return {"rules": RULES, "default": DEFAULT_RULE, "parenchyma_hu": list(PARENCHYMA_HU)}


def normalized_range(mod: str) -> tuple[float, float]:
    """The interval a normalised channel of modality `mod` lies in (its clip window after scaling).

    Anything that must know a channel's scale without looking at data uses this: the self-supervised
    transforms map each channel onto [0, 1] by it, and the ImageNet input mapping onto 0–255.
    """
    rule = RULES.get(mod, DEFAULT_RULE)
    if rule["kind"] == "fixed":
        return ((rule["lo"] - rule["offset"]) / rule["scale"], (rule["hi"] - rule["offset"]) / rule["scale"])
    return float(rule["lo"]), float(rule["hi"])  # brain-median rules clip at lo·median, hi·median


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
        if RULES.get(mod, DEFAULT_RULE)["kind"] != "fixed" and brain is None:
            brain = brain_mask(volumes)
        params[mod] = channel_params(mod, volumes[mod], brain)
    return params


def channel_params(mod: str, volume: np.ndarray, brain: np.ndarray | None) -> dict:
    """{offset, scale, lo, hi} of one channel; `brain` (brain_mask) is needed for brain-median rules only."""
    rule = RULES.get(mod, DEFAULT_RULE)
    if rule["kind"] == "fixed":
        return {"offset": rule["offset"], "scale": rule["scale"], "lo": rule["lo"], "hi": rule["hi"]}
    values = volume[brain]
    positive = values[values > 0]
    median = float(np.median(positive)) if positive.size else 1.0
    median = median if median > 0 else 1.0
    return {"offset": 0.0, "scale": median, "lo": rule["lo"] * median, "hi": rule["hi"] * median}


def normalize_channel(volume: np.ndarray, p: dict) -> np.ndarray:
    """One channel clipped and scaled by its params, float32."""
    x = np.clip(volume.astype(np.float32), p["lo"], p["hi"])
    return (x - np.float32(p["offset"])) / np.float32(p["scale"])


def normalize(volumes: dict, modalities, params: dict) -> np.ndarray:
    """Stack the modalities as channels (X, Y, Z, C) float32, clipped and scaled by `params`."""
    channels = [normalize_channel(volumes[mod], params[mod]) for mod in modalities]
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


def case_to_records_arrays(volumes: dict, mask, modalities, params, grid: int, sampling: "Sampling | None" = None):
    """Normalised image (Z, G, G, C) and mask (Z, G, G) uint8 on the grid, slice axis first.

    Without `sampling` the stored voxel order is taken as canonical and no slice is resampled (the
    behaviour of manifests written before orientation was read from the header).
    """
    if sampling is not None:
        channels = [canonical_to_target(normalize_channel(to_canonical_volume(volumes[m], sampling), params[m]), sampling)
                    for m in modalities]
        return stack_channels(channels), mask_to_target(mask, sampling)
    image = to_grid(normalize(volumes, modalities, params), grid)
    image = np.moveaxis(image, 2, 0)
    if mask is None:
        m = np.zeros(image.shape[:3], np.uint8)
    else:
        m = np.moveaxis(mask_to_grid(mask, grid), 2, 0).astype(np.uint8)
    return np.ascontiguousarray(image), np.ascontiguousarray(m)


# --------------------------------------------------------------------------------------------------
# orientation and the sampling plan


def orientation_fault(affine) -> str | None:
    """Why an affine cannot be reoriented to axial slices by permutation and flips, or None."""
    a = np.asarray(affine, np.float64)[:3, :3]
    norms = np.linalg.norm(a, axis=0)
    if not np.all(np.isfinite(a)) or np.any(norms <= 0):
        return "degenerate affine: a voxel axis has no direction"
    cosines = np.abs(a / norms)
    worst = float(np.degrees(np.arccos(np.clip(cosines.max(axis=0).min(), -1, 1))))
    if worst > MAX_OBLIQUE_DEG:
        return (f"oblique orientation: a voxel axis is {worst:.0f} degrees from the nearest anatomical axis "
                f"(at most {MAX_OBLIQUE_DEG:.0f} is handled); reslice the volume to an axis-aligned grid")
    if len(set(cosines.argmax(axis=0).tolist())) < 3:
        return "degenerate affine: two voxel axes point along the same anatomical axis"
    return None


def canonical_ornt(affine) -> np.ndarray:
    """nibabel orientation transform (axis, flip per stored axis) from stored order to CANONICAL_AXCODES."""
    from nibabel import orientations

    stored = orientations.io_orientation(np.asarray(affine, np.float64))
    return orientations.ornt_transform(stored, orientations.axcodes2ornt(CANONICAL_AXCODES))


def inverse_ornt(ornt) -> np.ndarray:
    """The orientation transform that undoes `ornt`."""
    ornt = np.asarray(ornt, np.float64)
    back = np.zeros_like(ornt)
    for axis, (target, flip) in enumerate(ornt):
        back[int(target)] = (axis, flip)
    return back


def reorient(array: np.ndarray, ornt) -> np.ndarray:
    """`array` (spatial axes first; any trailing axes kept) with the orientation transform applied."""
    from nibabel import orientations

    ornt = np.asarray(ornt, np.float64)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return array
    return orientations.apply_orientation(array, ornt)


@dataclass(frozen=True)
class Sampling:
    """How one case goes from its stored voxels to the records' grid and back (stored in the manifest)."""

    shape: tuple  # stored spatial shape (X, Y, Z)
    ornt: tuple  # stored -> canonical: ((canonical axis, flip), ...) per stored axis
    canonical_shape: tuple
    canonical_spacing: tuple  # mm
    grid: int  # in-plane side of the records
    depth: int  # slices in the records

    @property
    def grid_spacing(self) -> tuple:
        """Voxel spacing (mm) of the records: in-plane on the grid, slices at the resampled spacing."""
        (x, y, z), (sx, sy, sz) = self.canonical_shape, self.canonical_spacing
        return (sx * x / self.grid, sy * y / self.grid, sz * z / self.depth)

    @property
    def stored_axcodes(self) -> tuple:
        """Anatomical direction of each stored voxel axis, e.g. ('R', 'A', 'S')."""
        codes = {0: "LR", 1: "PA", 2: "SI"}  # canonical L, P, S and their opposites
        return tuple(codes[int(a)][0 if f > 0 else 1] for a, f in self.ornt)

    def to_json(self) -> dict:
        """The manifest's per-case `sampling` entry."""
        return {"shape": list(self.shape), "ornt": [[int(a), int(f)] for a, f in self.ornt],
                "stored_axcodes": "".join(self.stored_axcodes), "canonical_axcodes": "".join(CANONICAL_AXCODES),
                "canonical_shape": list(self.canonical_shape), "canonical_spacing": list(self.canonical_spacing),
                "grid": self.grid, "depth": self.depth, "grid_spacing": list(self.grid_spacing)}

    @classmethod
    def from_json(cls, d: dict) -> "Sampling":
        """Inverse of to_json."""
        return cls(tuple(d["shape"]), tuple(tuple(r) for r in d["ornt"]), tuple(d["canonical_shape"]),
                   tuple(d["canonical_spacing"]), int(d["grid"]), int(d["depth"]))


def plan_sampling(shape, affine, spacing, grid: int, slice_mm: float | None = None) -> Sampling:
    """The sampling plan of a case: reorientation from its affine, in-plane grid, slice count at slice_mm."""
    fault = orientation_fault(affine)
    if fault:

        raise IslesbenchError(fault)
    ornt = canonical_ornt(affine)
    cshape, cspacing = [0, 0, 0], [0.0, 0.0, 0.0]
    for axis, (target, _) in enumerate(ornt):
        cshape[int(target)] = int(shape[axis])
        cspacing[int(target)] = float(spacing[axis])
    depth = cshape[2] if slice_mm is None else max(1, int(round(cshape[2] * cspacing[2] / float(slice_mm))))
    return Sampling(tuple(int(s) for s in shape[:3]), tuple((int(a), int(f)) for a, f in ornt), tuple(cshape),
                    tuple(cspacing), int(grid), depth)


def _zoom_to(array: np.ndarray, shape3: tuple, order: int) -> np.ndarray:
    """Resample the first three axes of `array` to `shape3` (grid-mode, edges kept); other axes untouched."""
    if tuple(array.shape[:3]) == tuple(shape3):
        return np.array(array, copy=True)
    factors = tuple(t / s for t, s in zip(shape3, array.shape[:3])) + (1.0,) * (array.ndim - 3)
    out = ndimage.zoom(array, factors, order=order, mode="nearest", grid_mode=True)
    return out.astype(array.dtype, copy=False)


def channel_to_target(volume: np.ndarray, sampling: Sampling, order: int = 1) -> np.ndarray:
    """One stored (X, Y, Z) channel -> canonical orientation -> (G, G, depth) on the records' grid."""
    # A flipped or transposed view interpolates ~3x slower than a contiguous copy (512x512x151, scipy 1.x).
    canonical = np.ascontiguousarray(reorient(volume, sampling.ornt))
    return _zoom_to(canonical, (sampling.grid, sampling.grid, sampling.depth), order)


def canonical_to_target(volume: np.ndarray, sampling: Sampling, order: int = 1) -> np.ndarray:
    """A canonical volume at the target slice count (`to_canonical_volume`) -> (G, G, depth): in-plane only.

    prepare and predict both go stored -> `to_canonical_volume` -> normalise -> this, so the model sees the
    same numbers from either (the normalisation's brain medians are taken on the same voxels).
    """
    return _zoom_to(volume, (sampling.grid, sampling.grid, sampling.depth), order)


def stack_channels(channels: list) -> np.ndarray:
    """(G, G, depth) channels -> the records' image (depth, G, G, C) float32, slice axis first."""
    return np.ascontiguousarray(np.moveaxis(np.stack(channels, axis=-1), 2, 0).astype(np.float32, copy=False))


def mask_to_target(mask, sampling: Sampling) -> np.ndarray:
    """A stored binary mask -> (depth, G, G) uint8 (linear interpolation, then > 0.5); zeros for None."""
    if mask is None:
        return np.zeros((sampling.depth, sampling.grid, sampling.grid), np.uint8)
    m = channel_to_target(mask.astype(np.float32), sampling) > 0.5
    return np.ascontiguousarray(np.moveaxis(m, 2, 0).astype(np.uint8))


def to_canonical_volume(volume: np.ndarray, sampling: Sampling) -> np.ndarray:
    """A stored volume in the canonical orientation at the target slice count (in-plane shape kept), contiguous."""
    # A flipped or transposed view interpolates ~3x slower than a contiguous copy (512x512x151, scipy 1.x).
    c = np.ascontiguousarray(reorient(volume, sampling.ornt))
    return _zoom_to(c, (c.shape[0], c.shape[1], sampling.depth), 1) if c.shape[2] != sampling.depth else c


def from_canonical_volume(array: np.ndarray, sampling: Sampling, order: int = 1) -> np.ndarray:
    """Undo `to_canonical_volume`: the stored shape and voxel order, for the input's own affine."""
    c = _zoom_to(array, sampling.canonical_shape, order)
    return np.ascontiguousarray(reorient(c, inverse_ornt(sampling.ornt)))


def from_target(array: np.ndarray, sampling: Sampling, order: int = 1) -> np.ndarray:
    """Undo the sampling for a map on the records' grid (G, G, depth): the stored shape and voxel order."""
    return from_canonical_volume(array, sampling, order)
