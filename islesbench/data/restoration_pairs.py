"""Models Genesis image restoration transforms (Zhou et al., MICCAI 2019; Medical Image Analysis 2021), 2-D.

Self-supervised pretraining learns to restore a slice from a distorted copy of it. The distortions are
the four of Models Genesis, applied in its order and with its default rates:

* local pixel shuffling (rate 0.5): pixels are permuted inside small tiles, which destroys local texture
  and keeps global shape;
* a non-linear intensity transform (rate 0.9): every channel goes through its own monotonic Bézier curve
  (P0 = (0, 0), P3 = (1, 1), random P1, P2), increasing or, with probability 1/2, decreasing;
* painting (rate 0.9): inner cut-out (20 % of painted samples: up to 5 boxes of 1/6–1/3 of the side
  filled with uniform noise) or outer cut-out (80 %: everything filled with noise except up to 5 boxes of
  3/7–4/7 of the side).

The network must then learn appearance (intensities of each map), texture and context (what belongs in a
box, given the rest of the slice) from the data alone. Models Genesis works on one [0, 1] intensity
channel; here every one of the five normalised maps is mapped onto [0, 1] by its own clip window
(`preprocessing.normalized_range`) and the intensity transform and the noise apply per channel, while
shuffling and the boxes share positions across channels (a pixel keeps its five values together, as the
maps describe one voxel). The restoration target is the undistorted slice on that [0, 1] scale.

Every random draw is stateless and seeded by a (seed, element index) pair, as the training pipeline's
augmentation is (islesbench.data.augment), so the same seed gives the same pairs and a resumed run the same stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from islesbench.data.augment import stateless_flip

# Samples of the Bézier curve the intensity transform interpolates between.
BEZIER_SAMPLES = 129
# Side lengths (pixels) of the tiles whose pixels local shuffling permutes; those dividing the input are used.
SHUFFLE_TILES = (4, 8, 16)
MAX_BOXES = 5
BOX_CONTINUE = 0.95  # Models Genesis adds another box with probability 0.95, up to MAX_BOXES


@dataclass
class GenesisConfig:
    """The transform rates (Models Genesis' defaults)."""

    shuffle_prob: float = 0.5
    nonlinear_prob: float = 0.9
    paint_prob: float = 0.9
    inpaint_share: float = 0.2  # of the painted samples: inner cut-out; the rest outer cut-out
    flip_prob: float = 0.4  # flips of input and target together (augmentation, as Models Genesis)

    def validate(self) -> list:
        """Problems with the rates, as lines (empty when valid)."""
        return [f"genesis.{k} must lie in [0, 1], not {v}" for k, v in vars(self).items()
                if not isinstance(v, (int, float)) or not 0 <= v <= 1]


def to_unit(image, lows, highs):
    """(…, C) normalised channels onto [0, 1] by each channel's window [low, high] (clipped)."""
    lows = tf.constant(lows, tf.float32)
    highs = tf.constant(highs, tf.float32)
    return tf.clip_by_value((image - lows) / (highs - lows), 0.0, 1.0)


def from_unit(image, lows, highs):
    """Inverse of `to_unit` (inside the windows)."""
    lows = tf.constant(lows, tf.float32)
    highs = tf.constant(highs, tf.float32)
    return image * (highs - lows) + lows


def _coin(seed, prob: float):
    return tf.random.stateless_uniform([], seed) < prob


def bezier_curves(seed, channels: int, samples: int = BEZIER_SAMPLES):
    """(xs, ys), each (channels, samples): a cubic Bézier from (0, 0) to (1, 1) per channel, random P1, P2.

    With control points in the unit square both coordinates are non-decreasing in t (the derivative is a
    quadratic Bernstein polynomial with coefficients a1, a2 − a1, 1 − a2, never negative there), so the
    curve is the graph of a monotonic map [0, 1] → [0, 1].
    """
    points = tf.random.stateless_uniform([4, channels, 1], seed)  # x1, y1, x2, y2
    t = tf.linspace(0.0, 1.0, samples)[None, :]
    b1, b2, b3 = 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3
    xs = b1 * points[0] + b2 * points[2] + b3
    ys = b1 * points[1] + b2 * points[3] + b3
    return xs, ys


def interpolate(x, xs, ys):
    """Piecewise-linear y(x) per channel: x (H, W, C), xs/ys (C, K) with xs non-decreasing (np.interp)."""
    shape = tf.shape(x)
    flat = tf.transpose(tf.reshape(x, [-1, shape[-1]]))  # (C, N)
    k = tf.shape(xs)[1]
    upper = tf.clip_by_value(tf.searchsorted(xs, flat, side="right"), 1, k - 1)
    x0 = tf.gather(xs, upper - 1, batch_dims=1)
    x1 = tf.gather(xs, upper, batch_dims=1)
    y0 = tf.gather(ys, upper - 1, batch_dims=1)
    y1 = tf.gather(ys, upper, batch_dims=1)
    w = tf.clip_by_value((flat - x0) / tf.maximum(x1 - x0, 1e-7), 0.0, 1.0)
    out = y0 + w * (y1 - y0)
    return tf.reshape(tf.transpose(out), shape)


def nonlinear_intensity(x, seed):
    """Every channel of x (H, W, C) in [0, 1] through its own monotonic Bézier curve; all decreasing
    instead with probability 1/2."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    channels = x.shape[-1]
    xs, ys = bezier_curves(seeds[0], channels)
    ys = tf.cond(_coin(seeds[1], 0.5), lambda: tf.reverse(ys, axis=[1]), lambda: ys)
    return interpolate(x, xs, ys)


def _shuffle_tiles(x, seed, tile: int):
    """Permute the pixels inside a random share of the t×t tiles of a randomly offset tiling."""
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    size, channels = x.shape[0], x.shape[-1]
    shift = tf.random.stateless_uniform([2], seeds[0], 0, tile, dtype=tf.int32)
    rolled = tf.roll(x, shift=shift, axis=[0, 1])
    n = size // tile
    tiles = tf.reshape(tf.transpose(tf.reshape(rolled, [n, tile, n, tile, channels]), [0, 2, 1, 3, 4]),
                       [n * n, tile * tile, channels])
    perm = tf.argsort(tf.random.stateless_uniform([n * n, tile * tile], seeds[1]), axis=1)
    share = tf.random.stateless_uniform([], seeds[2], 0.3, 1.0)
    chosen = tf.random.stateless_uniform([n * n, 1], seeds[3]) < share
    perm = tf.where(chosen, perm, tf.range(tile * tile)[None, :])
    tiles = tf.gather(tiles, perm, batch_dims=1)
    back = tf.reshape(tf.transpose(tf.reshape(tiles, [n, n, tile, tile, channels]), [0, 2, 1, 3, 4]),
                      [size, size, channels])
    return tf.roll(back, shift=-shift, axis=[0, 1])


def local_pixel_shuffling(x, seed):
    """Local pixel shuffling of a square slice x (S, S, C): tiles of a random side among SHUFFLE_TILES."""
    size = x.shape[0]
    tiles = [t for t in SHUFFLE_TILES if size % t == 0] or [1]
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    which = tf.random.stateless_uniform([], seeds[0], 0, len(tiles), dtype=tf.int32)
    branches = [lambda t=t: _shuffle_tiles(x, seeds[1], t) for t in tiles]
    return tf.switch_case(which, branches)


def _boxes(seed, size: int, low: float, high: float):
    """(MAX_BOXES, S, S) bool masks of boxes of side U[low·S, high·S], and which boxes are drawn
    (the first always; each next one with probability BOX_CONTINUE while the previous was)."""
    seeds = tf.random.experimental.stateless_split(seed, num=3)
    lo, hi = max(1, int(size * low)), max(1, int(size * high))
    sides = tf.random.stateless_uniform([MAX_BOXES, 2], seeds[0], lo, hi + 1, dtype=tf.int32)
    corner = tf.cast(tf.random.stateless_uniform([MAX_BOXES, 2], seeds[1]) * tf.cast(size - sides + 1, tf.float32),
                     tf.int32)
    grid = tf.range(size)
    rows = (grid[None, :] >= corner[:, :1]) & (grid[None, :] < corner[:, :1] + sides[:, :1])  # (B, S)
    cols = (grid[None, :] >= corner[:, 1:]) & (grid[None, :] < corner[:, 1:] + sides[:, 1:])
    masks = rows[:, :, None] & cols[:, None, :]
    draws = tf.random.stateless_uniform([MAX_BOXES], seeds[2]) < BOX_CONTINUE
    drawn = tf.math.cumprod(tf.cast(tf.concat([[True], draws[1:]], 0), tf.int32)) > 0
    return masks, drawn


def inner_cutout(x, seed):
    """Models Genesis in-painting: up to 5 boxes of 1/6–1/3 of the side filled with uniform noise."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    masks, drawn = _boxes(seeds[0], x.shape[0], 1 / 6, 1 / 3)
    region = tf.reduce_any(masks & drawn[:, None, None], axis=0)[..., None]
    return tf.where(region, tf.random.stateless_uniform(tf.shape(x), seeds[1]), x)


def outer_cutout(x, seed):
    """Models Genesis out-painting: uniform noise everywhere except up to 5 boxes of 3/7–4/7 of the side."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    masks, drawn = _boxes(seeds[0], x.shape[0], 3 / 7, 4 / 7)
    kept = tf.reduce_any(masks & drawn[:, None, None], axis=0)[..., None]
    return tf.where(kept, x, tf.random.stateless_uniform(tf.shape(x), seeds[1]))


def distort(y, seed, config: GenesisConfig):
    """The Models Genesis input for target y (S, S, C) in [0, 1]: shuffling, intensity, painting."""
    s = tf.random.experimental.stateless_split(seed, num=7)
    x = tf.cond(_coin(s[0], config.shuffle_prob), lambda: local_pixel_shuffling(y, s[1]), lambda: y)
    x = tf.cond(_coin(s[2], config.nonlinear_prob), lambda: nonlinear_intensity(x, s[3]), lambda: x)

    def paint():
        return tf.cond(_coin(s[5], config.inpaint_share), lambda: inner_cutout(x, s[6]),
                       lambda: outer_cutout(x, s[6]))

    return tf.cond(_coin(s[4], config.paint_prob), paint, lambda: x)


def restoration_pair(image, seed, lows, highs, config: GenesisConfig):
    """(distorted input on the normalised scale, target on [0, 1]) for one normalised slice (S, S, C).

    The input returns to the normalised scale so that the encoder sees what it will see when fine-tuned.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=3)
    y = to_unit(image, lows, highs)
    for axis, s in ((1, seeds[0]), (0, seeds[1])):
        y = stateless_flip(y, s, axis, config.flip_prob)
    x = distort(y, seeds[2], config)
    return from_unit(x, lows, highs), y
