"""SubpixelConv2DTranspose computes what keras.layers.Conv2DTranspose computes, with oneDNN's fused bias."""

import keras
import numpy as np
import pytest

from benchmark_scripts import training_step_ops

from islesbench.models.subpixel_upconv import SubpixelConv2DTranspose


def _pair(kernel, strides, use_bias=True, **kwargs):
    plain = keras.layers.Conv2DTranspose(5, kernel, strides=strides, use_bias=use_bias, **kwargs)
    shuffled = SubpixelConv2DTranspose(5, kernel, strides=strides, use_bias=use_bias, **kwargs)
    shape = (2, 6, 7, 3)
    plain.build(shape)
    shuffled.build(shape)
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=w.shape).astype("float32") for w in plain.weights]
    plain.set_weights(weights)
    shuffled.set_weights(weights)
    return plain, shuffled


@pytest.mark.parametrize("kernel, strides, use_bias, padding", [
    (2, 2, True, "valid"), (2, 2, False, "same"), (3, 3, True, "valid"),
    (3, 2, True, "same"),  # overlapping windows: Keras' own call
])
def test_outputs_and_gradients_match_keras(kernel, strides, use_bias, padding):
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(1).normal(size=(2, 6, 7, 3)).astype("float32"))
    results = []
    for layer in _pair(kernel, strides, use_bias, padding=padding):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.reshape(tf.cast(tf.range(tf.size(y)) % 7, tf.float32), tf.shape(y)))
        grads = tape.gradient(loss, [x, *layer.trainable_weights])
        results.append((y.numpy(), [g.numpy() for g in grads]))
    (y0, g0), (y1, g1) = results
    assert y1.shape == y0.shape
    np.testing.assert_allclose(y1, y0, rtol=1e-5, atol=1e-5)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_any_input_size_and_the_layer_saves(tmp_path):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, SubpixelConv2DTranspose(4, 2, strides=2, name="up")(inputs))
    x = np.random.default_rng(2).normal(size=(1, 5, 3, 3)).astype("float32")
    assert model(x).shape == (1, 10, 6, 4)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.get_layer("up")) is SubpixelConv2DTranspose
    np.testing.assert_array_equal(loaded(x), model(x))


def test_a_training_step_runs_no_transposed_convolution_and_no_separate_bias_add():
    """The point of the layer: in bfloat16 the bias add and its gradient ran as slow Eigen kernels
    (BiasAdd, BiasAddGrad) beside the transposed convolution; now both sit inside oneDNN's 1×1 kernels."""
    inputs = keras.Input((8, 8, 16))
    x = SubpixelConv2DTranspose(16, 2, strides=2, dtype="mixed_bfloat16", name="up")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, dtype="float32")(x))
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 8, 16)).astype("float32")
    y = rng.normal(size=(2, 16, 16, 1)).astype("float32")
    ran = {op_type for name, op_type in training_step_ops(model, x, y) if "/up_" in name}  # the layer's own ops
    assert not any("BackpropInput" in t or t in ("BiasAdd", "BiasAddGrad") for t in ran), ran
    assert any("FusedConv2D" in t for t in ran), ran
