"""Keras metrics for training logs (the reported numbers come from `islesbench.evaluation.metrics`)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="islesbench")
class DiceScore(keras.metrics.Metric):
    """Mean per-sample Dice over all samples seen, masks taken as values at or above `threshold`
    (the same rule `islesbench evaluate` and the validation masks use).

    Each sample's Dice is computed over all its non-batch axes, so the metric works for 2D
    (B, H, W, C) and 3D (B, D, H, W, C) batches alike. A sample whose prediction and reference are both
    empty counts as Dice 1 (the ISLES convention of `islesbench.evaluation.overlap`); exactly one empty gives 0.
    An optional per-sample `sample_weight` weights each sample's Dice. The state is a sum and a count,
    aggregated by summation, so the result is exact under `tf.distribute` replicas.
    """

    def __init__(self, threshold: float = 0.5, name: str = "dice", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.threshold = float(threshold)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, aggregation="sum", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, aggregation="sum", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add the per-sample Dice of one batch."""
        dice = per_sample_dice(y_true, y_pred, self.threshold, dtype=self.dtype)
        if sample_weight is None:
            weight = ops.ones_like(dice)
        else:
            weight = ops.reshape(ops.cast(sample_weight, self.dtype), (ops.shape(dice)[0], -1))
            weight = ops.mean(weight, axis=1)  # a per-pixel weight map reduces to its per-sample mean
        self.total.assign_add(ops.sum(dice * weight))
        self.count.assign_add(ops.sum(weight))

    def result(self):
        """Mean Dice over the samples seen since the last reset (0 before any sample)."""
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        """Forget all samples."""
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        """Constructor arguments, for saving and reloading."""
        config = super().get_config()
        config["threshold"] = self.threshold
        return config


def per_sample_dice(y_true, y_pred, threshold: float = 0.5, dtype="float32"):
    """Dice of each sample of a batch (shape (B,)), after thresholding both tensors at `threshold`."""
    truth = ops.cast(ops.greater_equal(ops.cast(y_true, dtype), threshold), dtype)
    pred = ops.cast(ops.greater_equal(ops.cast(y_pred, dtype), threshold), dtype)
    batch = ops.shape(truth)[0]
    truth = ops.reshape(truth, (batch, -1))
    pred = ops.reshape(pred, (batch, -1))
    intersection = ops.sum(truth * pred, axis=1)
    denominator = ops.sum(truth, axis=1) + ops.sum(pred, axis=1)
    both_empty = ops.equal(denominator, 0.0)
    safe = ops.where(both_empty, ops.ones_like(denominator), denominator)
    return ops.where(both_empty, ops.ones_like(denominator), 2.0 * intersection / safe)
