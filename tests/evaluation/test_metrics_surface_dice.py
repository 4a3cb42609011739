"""islesbench.evaluation.surface_dice: surfels, distances and NSD against DeepMind's ``surface-distance`` package,
surfel areas against closed forms and the cube's symmetries."""

import itertools

import numpy as np
import pytest
from scipy import ndimage

from islesbench.evaluation.surface_dice import neighbour_codes, surface_dice, surfel_area_table, surfel_distances

# Our marching-cubes areas triangulate non-planar polygons around their centroid, DeepMind's table
# differently: NSD differed by at most 0.0018 on the cases below (README, "Metrics").
NSD_ABS_TOL = 0.003


def random_pair(seed: int):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(15, 40)), int(rng.integers(15, 40)), int(rng.integers(3, 12)))
    spacing = (float(rng.uniform(0.4, 1.0)), float(rng.uniform(0.4, 1.0)), float(rng.uniform(1.0, 12.0)))
    sigma = (rng.uniform(1, 3), rng.uniform(1, 3), rng.uniform(0.3, 1.5))
    ref = ndimage.gaussian_filter(rng.random(shape), sigma) > 0.52
    pred = (ndimage.gaussian_filter(rng.random(shape), sigma) > 0.52) | ndimage.binary_erosion(ref)
    if seed % 5 == 0:  # on the volume border
        ref[0] |= rng.random(shape[1:]) < 0.5
    if not ref.any():
        ref[shape[0] // 2, shape[1] // 2, 1] = True
    return pred, ref, spacing


@pytest.mark.parametrize("seed", range(20))
def test_distances_equal_deepmind_and_nsd_within_the_area_tolerance(seed):
    sd = pytest.importorskip("surface_distance")
    pred, ref, spacing = random_pair(seed)
    theirs = sd.compute_surface_distances(ref, pred, spacing)
    ours = surfel_distances(pred, ref, spacing)
    # the same surfel cubes at the same distances (DeepMind sorts them)
    assert np.array_equal(np.sort(ours["ref_to_pred"]), theirs["distances_gt_to_pred"])
    assert np.array_equal(np.sort(ours["pred_to_ref"]), theirs["distances_pred_to_gt"])
    for tau, nsd in zip((1.0, 2.0), surface_dice(pred, ref, spacing)):
        assert nsd == pytest.approx(sd.compute_surface_dice_at_tolerance(theirs, tau), abs=NSD_ABS_TOL)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.9, 0.7, 5.0)])
def test_box_area_has_the_closed_form(spacing):
    # An axis-aligned box of n0×n1×n2 voxels: flat faces (cubes with 4 inside corners), chamfered edges
    # (2 inside corners: a planar strip) and cut-off corners (1 inside corner: a triangle).
    n = (5, 4, 3)
    mask = np.zeros((9, 8, 7), bool)
    mask[2:7, 2:6, 2:5] = True
    s = np.asarray(spacing)
    faces = 2 * sum((n[a] - 1) * (n[b] - 1) * s[a] * s[b] for a, b in ((1, 2), (0, 2), (0, 1)))
    edges = 4 * sum((n[c] - 1) * s[c] * 0.5 * np.hypot(s[a], s[b]) for a, b, c in ((0, 1, 2), (0, 2, 1), (1, 2, 0)))
    corners = 8 * 0.125 * np.sqrt((s[1] * s[2]) ** 2 + (s[0] * s[2]) ** 2 + (s[0] * s[1]) ** 2)
    total = surfel_area_table(spacing)[neighbour_codes(mask)].sum()
    assert total == pytest.approx(faces + edges + corners, rel=1e-12)


def _transformed_code(code: int, perm, flips) -> int:
    """The neighbour code of the cube mapped by an axis permutation and reflections."""
    out = 0
    for b in range(8):
        if code >> (7 - b) & 1:
            corner = [(b >> 2) & 1, (b >> 1) & 1, b & 1]
            mapped = [corner[perm[a]] ^ flips[a] for a in range(3)]
            out |= 1 << (7 - (4 * mapped[0] + 2 * mapped[1] + mapped[2]))
    return out


def test_areas_are_invariant_under_the_48_cube_symmetries():
    spacing = np.array([0.7, 1.1, 4.0])
    table = surfel_area_table(spacing)
    for perm in itertools.permutations(range(3)):
        permuted = surfel_area_table(spacing[list(perm)])
        for flips in itertools.product((0, 1), repeat=3):
            for code in range(256):
                assert permuted[_transformed_code(code, perm, flips)] == pytest.approx(table[code], rel=1e-12)


def test_empty_masks():
    z = np.zeros((6, 6, 3), bool)
    one = z.copy()
    one[2, 2, 1] = True
    assert surface_dice(z, z, (1, 1, 1)) == [1.0, 1.0]
    assert surface_dice(one, z, (1, 1, 1)) == [0.0, 0.0]
    assert surface_dice(z, one, (1, 1, 1)) == [0.0, 0.0]
    assert surface_dice(one, one, (1, 1, 1)) == [1.0, 1.0]
