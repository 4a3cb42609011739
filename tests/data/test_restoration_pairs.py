"""Models Genesis transforms: seeded, each doing what the method says, per channel where it should."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from islesbench.data import restoration_pairs  # noqa: E402
from islesbench.data.restoration_pairs import GenesisConfig  # noqa: E402

WINDOWS = [(0.0, 5.0), (0.0, 5.0), (0.0, 4.0), (0.0, 4.0), (-1.5, 2.0)]


def _slice(seed=0, size=48):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(0.05, 0.95, (size, size, 5)).astype("float32"))


def _seed(i):
    return tf.constant([7, i], tf.int64)


def test_same_seed_same_pair_other_seed_other_pair():
    image = restoration_pairs.from_unit(_slice(), *zip(*WINDOWS))
    a = restoration_pairs.restoration_pair(image, _seed(1), *zip(*WINDOWS), GenesisConfig())
    b = restoration_pairs.restoration_pair(image, _seed(1), *zip(*WINDOWS), GenesisConfig())
    c = restoration_pairs.restoration_pair(image, _seed(2), *zip(*WINDOWS), GenesisConfig())
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_no_transform_restores_the_input_and_target_is_the_unit_scaled_slice():
    unit = _slice()
    image = restoration_pairs.from_unit(unit, *zip(*WINDOWS))
    off = GenesisConfig(shuffle_prob=0, nonlinear_prob=0, paint_prob=0, flip_prob=0)
    x, y = restoration_pairs.restoration_pair(image, _seed(3), *zip(*WINDOWS), off)
    np.testing.assert_allclose(y, unit, atol=1e-6)
    np.testing.assert_allclose(x, image, atol=1e-5)  # back on the normalised scale the network sees


def test_shuffling_moves_whole_pixels_locally():
    x = _slice()
    out = np.asarray(restoration_pairs.local_pixel_shuffling(x, _seed(4)))
    before, after = np.asarray(x).reshape(-1, 5), out.reshape(-1, 5)
    assert not np.array_equal(before, after)
    # the same five-channel pixel vectors, only moved (a voxel's maps stay together)
    assert sorted(map(tuple, before)) == sorted(map(tuple, after))
    # and moved locally: each channel's row profile is kept at a coarse scale
    np.testing.assert_allclose(np.asarray(x).mean(axis=(0, 1)), out.mean(axis=(0, 1)), atol=1e-6)
    # The mean above is fixed by the multiset already; locality itself: the values are unique, so every
    # output pixel's source is known. Pixels stay inside their tile of a tiling rolled around the slice,
    # so the wrap-around distance they move is below the tile's side on each axis.
    source = {v: divmod(i, 48) for i, v in enumerate(np.asarray(x)[..., 0].ravel())}
    assert len(source) == 48 * 48
    moved = np.array([np.subtract(source[v], divmod(i, 48)) % 48 for i, v in enumerate(out[..., 0].ravel())])
    assert moved.any()
    assert (np.minimum(moved, 48 - moved) < max(restoration_pairs.SHUFFLE_TILES)).all()


def test_flips_follow_flip_prob():
    unit = _slice()
    image = restoration_pairs.from_unit(unit, *zip(*WINDOWS))
    flip_only = GenesisConfig(shuffle_prob=0, nonlinear_prob=0, paint_prob=0, flip_prob=1)
    _, y = restoration_pairs.restoration_pair(image, _seed(8), *zip(*WINDOWS), flip_only)
    np.testing.assert_allclose(y, np.asarray(unit)[::-1, ::-1], atol=1e-6)


def test_intensity_transform_is_monotonic_per_channel_with_its_own_curve():
    x = _slice()
    out = np.asarray(restoration_pairs.nonlinear_intensity(x, _seed(5)))
    directions = set()
    for c in range(5):
        order = np.argsort(np.asarray(x[..., c]).ravel())
        d = np.diff(out[..., c].ravel()[order])
        assert (d >= -1e-6).all() or (d <= 1e-6).all(), c
        directions.add(bool((d >= -1e-6).all()))
    assert len(directions) == 1  # one draw decides increasing or decreasing for the slice
    # each channel has its own curve: the same input values map differently in two channels
    same = tf.stack([x[..., 0]] * 5, axis=-1)
    mapped = np.asarray(restoration_pairs.nonlinear_intensity(same, _seed(5)))
    assert not np.allclose(mapped[..., 0], mapped[..., 1])
    assert 0 <= out.min() and out.max() <= 1


def test_cutouts_fill_boxes_with_noise_shared_across_channels():
    x = tf.zeros([48, 48, 5])
    inner = np.asarray(restoration_pairs.inner_cutout(x, _seed(6)))
    changed = inner != 0
    assert changed.any() and not changed.all()
    assert (changed == changed[..., :1]).all()  # boxes are where they are in every channel
    assert changed[..., 0].mean() < 0.6  # up to 5 boxes of at most a third of the side
    outer = np.asarray(restoration_pairs.outer_cutout(x, _seed(6)))
    kept = outer == 0
    assert kept.any() and (kept == kept[..., :1]).all()
    assert kept[..., 0].mean() >= (3 / 7 * 48 - 1) ** 2 / 48 ** 2 * 0.99  # at least one box of >= 3/7 of the side


def test_rates_are_validated():
    assert GenesisConfig().validate() == []
    assert GenesisConfig(paint_prob=1.5).validate()
