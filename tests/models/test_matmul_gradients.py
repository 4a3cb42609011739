"""MatmulGradientConv2D computes what keras.layers.Conv2D computes, forward and backward; `resolve` picks it."""

import keras
import numpy as np
import pytest

from benchmark_scripts import training_step_ops

from islesbench.models.matmul_gradients import MatmulGradientConv2D, conv2d_class, resolve


def _outputs_and_gradients(layer, x):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.reshape(tf.cast(tf.range(tf.size(y)) % 5, y.dtype), tf.shape(y)))
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    return y.numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("kernel, dilation, strides, padding, use_bias", [
    (1, 1, 1, "valid", True), (1, 1, 1, "same", False), (3, 1, 1, "same", True), (3, 2, 1, "same", False),
    (3, 4, 1, "same", True), (5, 1, 1, "same", True),
    (1, 1, 2, "valid", True), (3, 1, 1, "valid", True), (7, 1, 2, "valid", True),  # Keras' own call
])
def test_outputs_and_gradients_match_keras(kernel, dilation, strides, padding, use_bias):
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(0).normal(size=(2, 11, 9, 6)).astype("float32"))
    options = dict(kernel_size=kernel, strides=strides, padding=padding, dilation_rate=dilation, use_bias=use_bias)
    plain, matmul = keras.layers.Conv2D(4, **options), MatmulGradientConv2D(4, **options)
    plain.build(x.shape)
    matmul.build(x.shape)
    rng = np.random.default_rng(1)
    weights = [rng.normal(size=w.shape).astype("float32") for w in plain.weights]
    plain.set_weights(weights)
    matmul.set_weights(weights)
    (y0, g0), (y1, g1) = _outputs_and_gradients(plain, x), _outputs_and_gradients(matmul, x)
    np.testing.assert_array_equal(y1, y0)  # the forward pass is the backend's convolution
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_bfloat16_gradients_stay_within_rounding_of_float32():
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(2).normal(size=(4, 8, 8, 32)).astype("float32"))
    layer = MatmulGradientConv2D(16, 3, padding="same", dilation_rate=2, dtype="mixed_bfloat16")
    reference = keras.layers.Conv2D(16, 3, padding="same", dilation_rate=2)
    layer.build(x.shape)
    reference.build(x.shape)
    reference.set_weights(layer.get_weights())
    (y, grads), (_, expected) = _outputs_and_gradients(layer, tf.cast(x, tf.bfloat16)), _outputs_and_gradients(reference, x)
    assert y.dtype == tf.bfloat16.as_numpy_dtype
    for g, e in zip(grads[1:], expected[1:]):  # kernel and bias: sums of 4·8·8 bfloat16 products each
        g = np.asarray(g, "float32")
        assert np.abs(g - e).max() <= 0.02 * np.abs(e).max()


def test_the_layer_saves_and_loads_as_itself(tmp_path):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, MatmulGradientConv2D(4, 3, padding="same", name="conv")(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.get_layer("conv")) is MatmulGradientConv2D
    x = np.random.default_rng(3).normal(size=(1, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(loaded(x), model(x))


def test_auto_is_matmul_only_for_the_full_width_pspnet_on_tensorflow_on_a_cpu_in_bfloat16():
    import tensorflow as tf

    assert resolve("auto", "float32") == "native"
    assert resolve("auto", "mixed_bfloat16") == ("native" if tf.config.list_physical_devices("GPU") else "matmul")
    assert resolve("auto", "mixed_bfloat16", encoder_width=0.125) == "native"  # the quick profile's PSPNet
    assert resolve("native", "mixed_bfloat16") == "native" and resolve("matmul", "float32") == "matmul"
    assert conv2d_class("native") is keras.layers.Conv2D and conv2d_class("matmul") is MatmulGradientConv2D
    with pytest.raises(ValueError):
        conv2d_class("auto")


def test_a_training_step_runs_no_oneDNN_weight_gradient_for_stride_one_convolutions():
    inputs = keras.Input((8, 8, 16))
    x = MatmulGradientConv2D(16, 3, padding="same", dilation_rate=2, dtype="mixed_bfloat16", name="wide")(inputs)
    x = MatmulGradientConv2D(32, 1, dtype="mixed_bfloat16", name="point")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, dtype="float32", name="logits")(x))
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 8, 16)).astype("float32")
    y = rng.normal(size=(2, 8, 8, 1)).astype("float32")
    ran = training_step_ops(model, x, y)
    filters = [name for name, op_type in ran if "BackpropFilter" in op_type]
    assert filters and all("logits" in name for name in filters), filters  # only the plain Conv2D's
    assert any("MatMul" in op_type for _, op_type in ran)
