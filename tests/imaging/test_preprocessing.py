"""Normalisation and in-plane resampling are undone exactly (up to clipping and interpolation)."""

import numpy as np
from scipy import ndimage

from islesbench.imaging import preprocessing


def _volumes(shape=(40, 36, 3), seed=0):
    rng = np.random.default_rng(seed)
    ct = rng.uniform(20, 50, shape).astype(np.float32)
    ct[:3] = 600.0  # bone
    cbf = rng.uniform(20, 70, shape).astype(np.float32)
    cbv = rng.uniform(1.5, 5, shape).astype(np.float32)
    return {"CT": ct, "CT_CBF": cbf, "CT_CBV": cbv, "CT_MTT": 60 * cbv / cbf, "CT_Tmax": rng.uniform(0, 12, shape).astype(np.float32)}


def test_normalize_then_denormalize_gives_clipped_input():
    vols = _volumes()
    mods = ("CT_CBF", "CT_CBV", "CT_MTT", "CT_Tmax", "CT")
    params = preprocessing.normalization_params(vols, mods)
    image = preprocessing.normalize(vols, mods, params)
    assert image.shape == (40, 36, 3, 5) and image.dtype == np.float32
    back = preprocessing.denormalize(image, mods, params)
    for m in mods:
        expected = np.clip(vols[m], params[m]["lo"], params[m]["hi"])
        np.testing.assert_allclose(back[m], expected, rtol=1e-5, atol=1e-4)
    # bone is clipped to the CT window, parenchyma is not
    assert back["CT"][:3].max() == 120.0 and back["CT"][5:].min() >= 20.0


def test_relative_maps_are_divided_by_brain_median():
    vols = _volumes()
    params = preprocessing.normalization_params(vols, ("CT_CBF",))
    brain = (vols["CT"] >= 15) & (vols["CT"] <= 60)
    assert params["CT_CBF"]["scale"] == np.median(vols["CT_CBF"][brain])


def test_grid_round_trip_on_smooth_data():
    rng = np.random.default_rng(1)
    smooth = ndimage.gaussian_filter(rng.normal(size=(50, 44, 4)), (4, 4, 0)).astype(np.float32)
    grid = preprocessing.to_grid(smooth, 64)
    assert grid.shape == (64, 64, 4)
    back = preprocessing.from_grid(grid, (50, 44))
    assert back.shape == smooth.shape
    assert np.abs(back - smooth).max() < 0.1 * np.abs(smooth).max()


def test_grid_identity_when_already_on_grid():
    a = np.arange(64 * 64 * 2, dtype=np.float32).reshape(64, 64, 2)
    np.testing.assert_array_equal(preprocessing.to_grid(a, 64), a)


def test_records_arrays_slice_axis_first():
    vols = _volumes()
    mods = ("CT_CBF", "CT")
    mask = np.zeros((40, 36, 3), bool)
    mask[10:20, 10:20, 1] = True
    params = preprocessing.normalization_params(vols, mods)
    image, m = preprocessing.case_to_records_arrays(vols, mask, mods, params, 32)
    assert image.shape == (3, 32, 32, 2) and m.shape == (3, 32, 32)
    assert m[1].sum() > 0 and m[0].sum() == 0 and m[2].sum() == 0
