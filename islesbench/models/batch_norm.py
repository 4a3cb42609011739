"""BatchNormalization that runs as one fused kernel on TensorFlow: `FusedBatchNormalization`.

Keras 3's BatchNormalization is written in `keras.ops`: it upcasts to float32, computes the moments and
normalises with a dozen element-wise ops, each a pass over the activations (and as many again in the
backward pass). On a CPU those passes cost as much as the convolutions around them once the convolutions
run in bfloat16 (`benchmarks/models.py --breakdown` gives batch norm's share of each model's step).
TensorFlow's FusedBatchNormV3 (oneDNN on CPU, cuDNN on GPU) does the
same maths in one pass each way, in float32 (bfloat16 activations go in as they are where oneDNN's
bfloat16 kernel is fast, and are cast to float32 and back elsewhere; the results are the same bits).

Only the computation changes: the weights, their names, the float32 statistics, momentum and epsilon are
Keras' own, so checkpoints and pretrained weights load either way. The moving variance is updated with the
biased batch variance, as Keras' layer does (the fused kernel returns the unbiased one; it is rescaled).
V-Net's 5-D slabs go through the 2-D kernel as (B·D, H, W, C), which has the same per-channel statistics.
Other backends (JAX on a GPU), masks and any axis but the last use Keras' layer unchanged.
"""

from __future__ import annotations

import keras

# TensorFlow is imported inside `call`, only when the TensorFlow backend runs it (and to keep start-up fast).


@keras.saving.register_keras_serializable(package="islesbench")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization, computed by TensorFlow's fused kernel where it applies.

    Args:
        **kwargs: as keras.layers.BatchNormalization (axis, momentum, epsilon, initialisers, name, …).

    Call: `layer(inputs, training=None, mask=None)` with inputs (B, H, W, C) or (B, D, H, W, C), any float
    dtype; returns the normalised inputs, same shape, in the layer's compute dtype.
    """

    def _fused(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        return (keras.backend.backend() == "tensorflow" and mask is None and rank in (4, 5)
                and self.axis in (-1, rank - 1) and not self.renorm and not self.synchronized)

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = self.moving_mean.shape[0]
        scale = tf.cast(self.gamma, "float32") if self.scale else tf.ones((channels,), "float32")
        offset = tf.cast(self.beta, "float32") if self.center else tf.zeros((channels,), "float32")
        # The statistics and the normalisation are float32 either way. bfloat16 activations go to the kernel
        # as they are where oneDNN has a vectorised bfloat16 kernel (channels a multiple of 16: 1.4-2x
        # faster forward and backward than the casts around the float32 one, same bits out); below that its
        # bfloat16 path is a slow fallback (8x slower at 8 channels), so they are cast to float32 and back.
        x = inputs if _native_bfloat16(inputs, channels) else tf.cast(inputs, "float32")
        shape = tf.shape(x)
        if len(inputs.shape) == 5:
            # Slabs (B, D, H, W, C) as (B·D, H, W, C): the same per-channel statistics, and the 2-D kernel
            # (the fused 5-D one measured no faster than Keras' layer).
            x = tf.reshape(x, tf.concat([[-1], shape[2:]], 0))
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, scale, offset, epsilon=self.epsilon, data_format="NHWC", is_training=True)
            n = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), "float32")
            biased = variance * tf.maximum(n - 1.0, 1.0) / n
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + biased * (1.0 - self.momentum))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, scale, offset, mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"), epsilon=self.epsilon, data_format="NHWC",
                is_training=False)
        if len(inputs.shape) == 5:
            y = tf.reshape(y, shape)
        # No reshape at rank 4, not even an identity one: Grappler fuses FusedBatchNorm with a Relu that
        # reads its output directly (oneDNN's FusedBatchNormEx, one pass instead of two), and a Reshape
        # between them hides the pattern.
        return tf.cast(y, self.compute_dtype)


def _native_bfloat16(inputs, channels: int) -> bool:
    return keras.backend.standardize_dtype(inputs.dtype) == "bfloat16" and channels % BFLOAT16_CHANNEL_MULTIPLE == 0


# oneDNN's bfloat16 batch norm is vectorised over blocks of 16 channels (measured on AVX-512 BF16, 2 cores).
BFLOAT16_CHANNEL_MULTIPLE = 16
