"""FusedBatchNormalization computes what keras.layers.BatchNormalization computes, and saves like it."""

import keras
import numpy as np
import pytest

from islesbench.models.batch_norm import FusedBatchNormalization


def _pair(shape, **kwargs):
    plain = keras.layers.BatchNormalization(momentum=0.9, **kwargs)
    fused = FusedBatchNormalization(momentum=0.9, **kwargs)
    plain.build(shape)
    fused.build(shape)
    rng = np.random.default_rng(0)
    weights = [rng.normal(1.0, 0.2, w.shape).astype("float32") if "variance" not in w.path
               else rng.uniform(0.5, 2.0, w.shape).astype("float32") for w in plain.weights]
    plain.set_weights(weights)
    fused.set_weights(weights)
    return plain, fused


@pytest.mark.parametrize("training", [True, False])
def test_outputs_statistics_and_gradients_match_keras(training):
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(1).normal(3.0, 2.0, (4, 6, 5, 3)).astype("float32"))
    plain, fused = _pair(x.shape)
    results = []
    for layer in (plain, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * tf.range(1.0, 4.0))
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append((y.numpy(), [g.numpy() for g in grads], [w.numpy() for w in layer.non_trainable_weights]))
    (y0, g0, s0), (y1, g1, s1) = results
    np.testing.assert_allclose(y1, y0, rtol=1e-4, atol=1e-4)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    for a, b in zip(s1, s0):  # moving mean and (biased) moving variance updated alike
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_bfloat16_input_gives_bfloat16_output_with_float32_statistics():
    layer = FusedBatchNormalization(dtype="mixed_bfloat16")
    x = keras.ops.cast(np.random.default_rng(2).normal(size=(2, 4, 4, 8)), "bfloat16")
    y = layer(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(layer.moving_variance.dtype) == "float32"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(y, "float32"))))


def test_five_d_inputs_match_keras_and_the_layer_saves(tmp_path):
    x = np.random.default_rng(3).normal(size=(2, 3, 4, 4, 2)).astype("float32")
    plain, fused = _pair(x.shape)
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), rtol=1e-5, atol=1e-5)
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, FusedBatchNormalization(name="bn")(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.get_layer("bn")) is FusedBatchNormalization
