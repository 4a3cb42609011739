"""Augmentation in islesbench.data.pipeline: one transform per element, masks follow images, seeds reproduce."""

import numpy as np
import pytest
import tensorflow as tf

from islesbench.data.augment import augment

SIDE = 32


def _asymmetric_slice(rng):
    """An (H, W) 0/1 pattern with no flip symmetry, so any flip shows."""
    pattern = np.zeros((SIDE, SIDE), np.float32)
    pattern[3:12, 2:9] = 1
    pattern[20:23, 18:30] = 1
    pattern[rng.random((SIDE, SIDE)) < 0.05] = 1
    return pattern


def _slab(depth=8, seed=0):
    """(D, H, W, 2) image whose channel 0 is the mask and channel 1 a ramp; every slice identical."""
    pattern = _asymmetric_slice(np.random.default_rng(seed))
    ramp = np.linspace(0, 1, SIDE * SIDE, dtype=np.float32).reshape(SIDE, SIDE)
    image = np.stack([pattern, ramp], axis=-1)
    slab = np.repeat(image[None], depth, axis=0)
    return slab, slab[..., :1].copy()


@pytest.mark.parametrize("strength", [0.0, 1.0])
def test_every_slice_of_a_slab_gets_the_same_transform(strength):
    image, mask = _slab()
    for i in range(12):  # several seeds: the old per-slice flips disagreed for most of them
        out_image, out_mask = augment(tf.constant(image), tf.constant(mask), tf.constant([7, i], tf.int64), strength)
        out_image, out_mask = out_image.numpy(), out_mask.numpy()
        for d in range(1, image.shape[0]):
            np.testing.assert_array_equal(out_image[d], out_image[0])
            np.testing.assert_array_equal(out_mask[d], out_mask[0])


def test_flips_happen_and_differ_between_seeds():
    image, mask = _slab(depth=1)
    outs = {augment(tf.constant(image), tf.constant(mask), tf.constant([1, i], tf.int64), 0.0)[1].numpy().tobytes()
            for i in range(16)}
    assert len(outs) == 4  # identity, left-right, up-down, both


@pytest.mark.parametrize("rank", [3, 4])
def test_mask_follows_its_image(rank):
    image, mask = _slab(depth=4)
    if rank == 3:
        image, mask = image[0], mask[0]
    for i in range(8):
        seed = tf.constant([3, i], tf.int64)
        out_image, out_mask = augment(tf.constant(image), tf.constant(mask), seed, 0.0)
        # Flips only: channel 0 of the image is the mask, moved exactly as the mask is.
        np.testing.assert_array_equal(out_image.numpy()[..., 0], out_mask.numpy()[..., 0])
        out_image, out_mask = augment(tf.constant(image), tf.constant(mask), seed, 1.0)
        # With scale and intensity jitter the image's mask channel is resampled the same way.
        follows = (out_image.numpy()[..., 0] > 0.5) == (out_mask.numpy()[..., 0] > 0.5)
        assert follows.mean() > 0.98


def test_same_seed_same_result():
    image, mask = _slab()
    seed = tf.constant([5, 11], tf.int64)
    a = augment(tf.constant(image), tf.constant(mask), seed, 1.0)
    b = augment(tf.constant(image), tf.constant(mask), seed, 1.0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
