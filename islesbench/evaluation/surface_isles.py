"""HD and ASSD as the ISLES 2015–2018 evaluator computes them, in NumPy/SciPy.

The challenge scored with ``validateLabelImages-ISLES``, a C++ program on ITK and VTK built from the
Covalic metric classes (``HausdorffDistanceImageToImageMetric``, ``AverageDistanceImageToImageMetric``).
What it computes, reduced to voxel sets (every step below was checked against SimpleITK and VTK in
``tests/test_metrics_isles_oracle.py``):

**HD.** For each direction A→B: the boundary voxels of A are the voxels of A where the morphological
gradient with ITK's binary ball of radius 1 is non-zero. In 3-D that ball is the 19-voxel
neighbourhood (3×3×3 without its 8 corners: ITK puts the ellipsoid's semi-axes at radius + 0.5 = 1.5,
and a corner is √3 away). At each boundary voxel the evaluator reads |B's signed Maurer distance map|
(exact Euclidean distance in mm). That map is 0 on B's contour — B's voxels with a background voxel
among their 26 neighbours — and elsewhere the exact distance to that contour, so the directed HD is the
largest exact distance from a ball-boundary voxel of A to a 26-contour voxel of B. The B-spline
interpolator the evaluator reads the map through is evaluated at voxel centres, where a cubic
interpolating spline returns the samples, so no interpolation is left. (Off the centres ITK's spline
equals ``scipy.ndimage.map_coordinates(order=3, mode="mirror")``: ITK mirrors about the end sample, not
scipy's default "reflect"; the tests check both facts.) HD = max of both directions.

**ASSD.** For each direction A→B: the points of a VTK contour (``vtkContourFilter``, iso-value 1.0 on
the 0/1 image of A). With the iso-value equal to the foreground value every edge crossing lies at
t = 1, on the centre of the foreground voxel, and VTK's synchronized templates merge these degenerate
points, so the contour is exactly one point per voxel of A that has a background voxel among its 6 face
neighbours. At each point the evaluator reads |B's signed Danielsson distance map|: ITK builds it as
the Danielsson map of B minus the Danielsson map of B's complement dilated by the same radius-1 ball,
so it is 0 on B's ball-boundary voxels and elsewhere the distance to them. d(A→B) is the sum over the
points divided by their number; ASSD = (d(A→B) + d(B→A)) / 2.

**Danielsson vs exact.** Danielsson's vector propagation is an approximation of the Euclidean
distance; this module uses the exact transform (``scipy.ndimage.distance_transform_edt``). The
difference is the only one left between this ASSD and the evaluator's; its size is measured in the
tests and stated in the README.

Edge cases, as the evaluator has them:

- **Image border.** ITK's morphology, contour and distance filters and VTK's contour filter see only
  voxels inside the image: a lesion voxel on the border of the volume is not a boundary voxel because
  of the border (medpy's erosion, by contrast, treats the outside as background). In a one-slice slab
  only in-plane neighbours count. The functions here get the same behaviour by eroding with
  ``border_value=1``.
- **Contour points outside the buffer.** The evaluator skips points outside the distance map's buffer
  but still divides by all points. With iso-value 1.0 every point is a voxel centre, so none is outside
  — as long as the image's direction matrix is the identity: VTK's image import carries only origin and
  spacing, so with a non-identity direction ITK maps the points elsewhere. We work in index space,
  i.e. reproduce the evaluator on images with an identity direction.
- **Two-slice volumes.** ITK's B-spline interpolation reads outside its buffer on an axis of length 2
  (SimpleITK 2.5.7 returns values that change from run to run, NaN among them), so the evaluator's HD
  and ASSD of a two-slice slab are not reproducible there; this module returns the values the
  evaluator intends (the samples at the voxel centres).
- **Danielsson in 3-D.** ITK dilates the complement with the same 19-voxel ball, so the Danielsson
  map's zero set is the ball boundary — not the 26-connected contour of the Maurer map used for HD.
- **Empty masks.** Both empty: HD = ASSD = 0; exactly one empty: ∞ (the evaluator's HD returns
  ``vnl_huge_val``; its ASSD raises, and islesbench reports ∞ as for every distance).
- **A mask that fills the whole volume** has no boundary, no contour and no contour for the other
  mask's distance map to measure to: the evaluator raises or reads an undefined map. HD and ASSD are
  NaN then.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

CONVENTION = "isles"


def ball_radius_one(ndim: int) -> np.ndarray:
    """ITK's binary ball of radius 1: offsets within 1.5 voxels (19 voxels in 3-D, all 9 in 2-D).

    Args:
        ndim: number of axes.

    Returns:
        (3,) * ndim bool structuring element.
    """
    return ndimage.generate_binary_structure(ndim, min(2, ndim))


def _inner_boundary(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """Voxels of `mask` with a background voxel inside the image among their `structure` neighbours."""
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=1)


def ball_boundary(mask: np.ndarray) -> np.ndarray:
    """Where the radius-1-ball morphological gradient of `mask` is non-zero, restricted to `mask`.

    Args:
        mask: (X, Y, Z) bool mask; voxels outside the image do not count as background.

    Returns:
        (X, Y, Z) bool mask of the ball-boundary voxels (the voxels ISLES' HD measures from).
    """
    return _inner_boundary(mask, ball_radius_one(mask.ndim))


def maurer_contour(mask: np.ndarray) -> np.ndarray:
    """The voxels at which ITK's signed Maurer distance map of `mask` is 0 (26-connected contour).

    Args:
        mask: (X, Y, Z) bool mask.

    Returns:
        (X, Y, Z) bool mask of the contour voxels (the voxels ISLES' HD measures to).
    """
    return _inner_boundary(mask, np.ones((3,) * mask.ndim, dtype=bool))


def contour_points(mask: np.ndarray) -> np.ndarray:
    """The voxels VTK's contour at iso-value 1.0 puts one point on: a background face neighbour.

    Args:
        mask: (X, Y, Z) bool mask.

    Returns:
        (X, Y, Z) bool mask of the contour points (the points ISLES' ASSD measures from).
    """
    return _inner_boundary(mask, ndimage.generate_binary_structure(mask.ndim, 1))


def _distance_to(target: np.ndarray, spacing, known) -> np.ndarray | None:
    """Exact Euclidean distance (mm) of every voxel to the nearest voxel of `target`; None if empty.

    `known` lists (set, distance map) pairs already computed: a map to an equal set is reused.
    """
    if not target.any():
        return None
    for known_target, distances in known:
        if np.array_equal(known_target, target):
            return distances
    return ndimage.distance_transform_edt(~target, sampling=spacing)


def isles_hd_assd(pred: np.ndarray, ref: np.ndarray, spacing, known_distance_maps=()) -> dict:
    """HD and ASSD as the ISLES 2015–2018 evaluator computes them (see the module docstring).

    Args:
        pred: (X, Y, Z) bool mask, the prediction (cropping both masks to their union plus a one-voxel
            margin, clipped to the volume, leaves the values unchanged).
        ref: (X, Y, Z) bool mask of the same shape, the reference.
        spacing: (3,) voxel size in mm.
        known_distance_maps: (voxel set, distance map to it in mm) pairs the caller already has, e.g. to
            medpy's surfaces, which equal the 26-connected contours wherever a mask stays off the border.

    Returns:
        {"hd", "assd"} in mm: 0 when both masks are empty, ``inf`` when exactly one is, NaN when a mask
        fills the whole volume.
    """
    spacing = tuple(float(s) for s in spacing)
    n_pred, n_ref = bool(pred.any()), bool(ref.any())
    if not n_pred and not n_ref:
        return {"hd": 0.0, "assd": 0.0}
    if not n_pred or not n_ref:
        return {"hd": math.inf, "assd": math.inf}
    sets = {}
    for name, mask in (("pred", pred), ("ref", ref)):
        ball = ball_boundary(mask)
        sets[name] = {
            "ball": ball,
            "points": contour_points(mask),
            "to_contour": _distance_to(maurer_contour(mask), spacing, known_distance_maps),
            "to_ball": _distance_to(ball, spacing, known_distance_maps),
        }
    hd, assd_halves = 0.0, []
    for a, b in (("pred", "ref"), ("ref", "pred")):
        src, dst = sets[a], sets[b]
        if dst["to_contour"] is None or dst["to_ball"] is None or not src["ball"].any() or not src["points"].any():
            return {"hd": math.nan, "assd": math.nan}  # a mask fills the volume: undefined
        hd = max(hd, float(dst["to_contour"][src["ball"]].max()))
        assd_halves.append(float(dst["to_ball"][src["points"]].mean()))
    return {"hd": hd, "assd": 0.5 * (assd_halves[0] + assd_halves[1])}
