"""Seeded, stateless augmentation shared by the training pipeline and the restoration pairs.

Every random draw is stateless and seeded by a (seed, element index) pair, so the same seed gives the
same augmented elements and a resumed run the same stream.
"""

from __future__ import annotations

import tensorflow as tf


def augment(image, mask, seed, strength: float = 1.0):
    """Flips, scale jitter (±10 %·strength, crop/pad back) and per-channel intensity jitter, seeded.

    Works on (H, W, C) slices and on (D, H, W, C) slabs (the same transform for every slice).
    """
    seeds = tf.random.experimental.stateless_split(seed, num=5)
    both = tf.concat([image, mask], axis=-1)
    # One draw per element, applied to the whole tensor: tf.image's random flips treat the leading axis
    # of a rank-4 tensor as a batch and would flip each slice of a slab on its own.
    both = stateless_flip(both, seeds[0], axis=-2)  # left-right (width)
    both = stateless_flip(both, seeds[1], axis=-3)  # up-down (height)
    if strength > 0:
        size = tf.shape(both)[-2]
        scale = tf.random.stateless_uniform([], seeds[2], 1 - 0.1 * strength, 1 + 0.1 * strength)
        new = tf.cast(tf.round(tf.cast(size, tf.float32) * scale), tf.int32)
        both = tf.image.resize(both, tf.stack([new, new]), method="bilinear")
        both = tf.image.resize_with_crop_or_pad(both, size, size)
    channels = tf.shape(image)[-1]
    image, mask = both[..., :channels], tf.cast(both[..., channels:] > 0.5, tf.float32)
    if strength > 0:
        gain = tf.random.stateless_uniform([channels], seeds[3], 1 - 0.1 * strength, 1 + 0.1 * strength)
        shift = tf.random.stateless_uniform([channels], seeds[4], -0.05 * strength, 0.05 * strength)
        image = image * gain + shift
    return image, mask


def stateless_flip(x, seed, axis: int, prob: float = 0.5):
    """`x` reversed along `axis` with probability `prob` (one seeded draw for the whole tensor)."""
    flip = tf.random.stateless_uniform([], seed) < prob
    return tf.cond(flip, lambda: tf.reverse(x, axis=[axis]), lambda: x)
