"""Normalised surface Dice (NSD) at a tolerance in mm, on marching-cubes surfels with areas.

The definition is that of DeepMind's ``surface-distance`` library (Nikolov et al., 2021), which most
published NSD values use:

- The masks are read as 2×2×2 cubes on the grid of voxel corners (zero outside the volume, so a lesion
  on the border of the volume has a surface there). Each cube's 8 corner values form a neighbour
  code; a cube whose code is neither empty nor full holds surface elements ("surfels").
- A surfel's area is the area, in mm², of the marching-cubes surface inside its cube.
- A surfel's distance is the Euclidean distance (mm, exact transform with the voxel spacing) from its
  cube to the nearest surfel cube of the other mask.
- NSD(τ) = (area of reference surfels within τ of the prediction's surface + area of predicted surfels
  within τ of the reference's surface) / (total reference area + total predicted area).

Surfel areas come from our own marching-cubes polygonisation of the 256 cube codes, not from
DeepMind's hand-written table: each polygon joins the edge midpoints where a corner inside meets a
corner outside; on a face with two diagonal inside corners the polygon cuts each inside corner off;
each closed polygon is triangulated as a fan around its centroid (independent of where the loop
starts, and exact for the planar ones). DeepMind's table triangulates non-planar polygons differently
in some codes, so the two NSDs differ slightly; the tests and the README state by how much.

Empty masks: both empty → NSD = 1 (nothing to miss, as Dice); exactly one empty → 0.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

NSD_TOLERANCES_MM = (1.0, 2.0)

# Corner b of a cube is at (b>>2 & 1, b>>1 & 1, b & 1) and carries bit (7 - b) of the neighbour
# code: corner (0,0,0) weighs 128 and corner (1,1,1) weighs 1, as in DeepMind's encoding kernel.
_CORNERS = np.array([(b >> 2 & 1, b >> 1 & 1, b & 1) for b in range(8)], dtype=np.float64)


def _cube_faces() -> list[list[int]]:
    """The 6 faces of the unit cube, each as its 4 corner indices in cyclic order."""
    faces = []
    for axis in range(3):
        u_axis, v_axis = (a for a in range(3) if a != axis)
        for side in (0, 1):
            face = []
            for u, v in ((0, 0), (1, 0), (1, 1), (0, 1)):
                position = [0, 0, 0]
                position[axis], position[u_axis], position[v_axis] = side, u, v
                face.append(4 * position[0] + 2 * position[1] + position[2])
            faces.append(face)
    return faces


def _polygons(code: int) -> list[np.ndarray]:
    """The closed marching-cubes polygons of one cube code, as arrays of vertices in the unit cube."""
    inside = [(code >> (7 - b)) & 1 for b in range(8)]
    segments = []
    for face in _cube_faces():
        edges = [frozenset((face[k], face[(k + 1) % 4])) for k in range(4)]
        crossing = [k for k in range(4) if inside[face[k]] != inside[face[(k + 1) % 4]]]
        if len(crossing) == 2:
            segments.append((edges[crossing[0]], edges[crossing[1]]))
        elif len(crossing) == 4:  # diagonal corners inside: cut each inside corner off on its own
            segments += [(edges[k - 1], edges[k]) for k in range(4) if inside[face[k]]]
    neighbours: dict = {}
    for a, b in segments:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    polygons, seen = [], set()
    for start in sorted(neighbours, key=sorted):
        if start in seen:
            continue
        loop, previous, current = [start], None, start
        seen.add(start)
        while True:
            following = [e for e in neighbours[current] if e != previous and e not in seen]
            if not following:
                break
            previous, current = current, following[0]
            loop.append(current)
            seen.add(current)
        polygons.append(np.array([_CORNERS[sorted(edge)].mean(axis=0) for edge in loop]))
    return polygons


def _surfel_triangles() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(code, edge vector 1, edge vector 2) of every centroid-fan triangle of every cube code."""
    codes, first, second = [], [], []
    for code in range(256):
        for polygon in _polygons(code):
            centre = polygon.mean(axis=0)
            for k in range(len(polygon)):
                codes.append(code)
                first.append(polygon[k] - centre)
                second.append(polygon[(k + 1) % len(polygon)] - centre)
    return np.array(codes), np.array(first), np.array(second)


_TRIANGLES = _surfel_triangles()


def surfel_area_table(spacing) -> np.ndarray:
    """The surface area inside a 2×2×2 cube, per neighbour code.

    Args:
        spacing: (3,) voxel size in mm.

    Returns:
        (256,) float64 areas in mm², indexed by neighbour code.
    """
    codes, first, second = _TRIANGLES
    scale = np.asarray(spacing, dtype=np.float64)
    areas = 0.5 * np.linalg.norm(np.cross(first * scale, second * scale), axis=1)
    return np.bincount(codes, weights=areas, minlength=256)


def neighbour_codes(mask: np.ndarray) -> np.ndarray:
    """The neighbour code of every 2×2×2 cube on the corner grid of a mask.

    Args:
        mask: (X, Y, Z) bool mask; zero outside the volume.

    Returns:
        (X+1, Y+1, Z+1) uint8 codes, one more cube than voxels per axis.
    """
    padded = np.pad(mask.astype(np.uint8), 1)
    n = tuple(s - 1 for s in padded.shape)
    codes = np.zeros(n, dtype=np.uint8)
    for b, (i, j, k) in enumerate(_CORNERS.astype(int)):
        codes |= padded[i : i + n[0], j : j + n[1], k : k + n[2]] << np.uint8(7 - b)
    return codes


def surfel_distances(pred: np.ndarray, ref: np.ndarray, spacing) -> dict:
    """Per surfel cube of each of two non-empty 3-D masks: its area and its distance to the other surface.

    Args:
        pred: (X, Y, Z) bool mask, the prediction (non-empty).
        ref: (X, Y, Z) bool mask, the reference (non-empty).
        spacing: (3,) voxel size in mm.

    Returns:
        {"pred_to_ref", "ref_to_pred"}: (N,) float64 distances in mm of each surfel cube of one mask to
        the other's surface; {"pred_areas", "ref_areas"}: (N,) float64 areas in mm²; cubes in C order.
    """
    table = surfel_area_table(spacing)
    codes_pred, codes_ref = neighbour_codes(pred), neighbour_codes(ref)
    surfels_pred = (codes_pred != 0) & (codes_pred != 255)
    surfels_ref = (codes_ref != 0) & (codes_ref != 255)
    return {
        "pred_to_ref": ndimage.distance_transform_edt(~surfels_ref, sampling=spacing)[surfels_pred],
        "pred_areas": table[codes_pred[surfels_pred]],
        "ref_to_pred": ndimage.distance_transform_edt(~surfels_pred, sampling=spacing)[surfels_ref],
        "ref_areas": table[codes_ref[surfels_ref]],
    }


def surface_dice(pred: np.ndarray, ref: np.ndarray, spacing, tolerances_mm=NSD_TOLERANCES_MM) -> list[float]:
    """Normalised surface Dice of two 3-D masks at each tolerance.

    Args:
        pred: (X, Y, Z) bool mask, the prediction.
        ref: (X, Y, Z) bool mask, the reference.
        spacing: (3,) voxel size in mm.
        tolerances_mm: the tolerances τ in mm.

    Returns:
        One NSD per tolerance, in the order given, as floats in [0, 1] (1 when both masks are empty,
        0 when exactly one is); a ValueError for masks that are not 3-D.
    """
    if pred.ndim != 3:
        raise ValueError(f"surface Dice needs 3-D masks, got {pred.ndim}-D")
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred or not has_ref:
        return [1.0 if has_pred == has_ref else 0.0 for _ in tolerances_mm]
    d = surfel_distances(pred, ref, spacing)
    total = d["pred_areas"].sum() + d["ref_areas"].sum()
    return [
        float((d["pred_areas"][d["pred_to_ref"] <= tau].sum() + d["ref_areas"][d["ref_to_pred"] <= tau].sum()) / total)
        for tau in tolerances_mm
    ]
