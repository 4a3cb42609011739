"""FusedBatchNormalization computes what keras.layers.BatchNormalization computes, and saves like it."""

import keras
import numpy as np
import pytest

from benchmark_scripts import training_step_ops

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


def _fused_kernel_dtypes(layer, x):
    import tensorflow as tf

    graph = tf.function(lambda t: layer(t, training=True)).get_concrete_function(x).graph
    return [op.get_attr("T").name for op in graph.get_operations() if op.type == "FusedBatchNormV3"]


@pytest.mark.parametrize("channels", [8, 16, 32])
def test_bfloat16_kernel_only_where_vectorised_and_the_same_numbers_as_through_float32(channels):
    """oneDNN's bfloat16 batch norm is fast for channel counts that are multiples of 16 and a slow fallback
    below: those take the bfloat16 kernel, the rest are cast to float32; the numbers are the same."""
    import tensorflow as tf

    x32 = np.random.default_rng(4).normal(2.0, 3.0, (4, 6, 6, channels)).astype("float32")
    x = tf.cast(x32, tf.bfloat16)
    layer = FusedBatchNormalization(dtype="mixed_bfloat16", momentum=0.9)
    reference = FusedBatchNormalization(momentum=0.9)  # float32 throughout, on the same bfloat16 values
    layer.build(x.shape)
    reference.build(x.shape)
    expected = ["bfloat16"] if channels % 16 == 0 else ["float32"]
    assert _fused_kernel_dtypes(layer, x) == expected
    weights = [w + 0.1 * i for i, w in enumerate(reference.get_weights())]
    layer.set_weights(weights)
    reference.set_weights(weights)
    upstream = tf.constant(np.random.default_rng(5).normal(size=x.shape).astype("float32"))
    outs = []
    for lay, inp in ((layer, x), (reference, tf.cast(x, tf.float32))):
        with tf.GradientTape() as tape:
            tape.watch(inp)
            y = lay(inp, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
        dx = tape.gradient(loss, inp)
        outs.append((tf.cast(tf.cast(y, tf.bfloat16), tf.float32).numpy(), tf.cast(tf.cast(dx, tf.bfloat16), tf.float32).numpy(),
                     [w.numpy() for w in lay.non_trainable_weights]))
    (y0, d0, s0), (y1, d1, s1) = outs
    np.testing.assert_allclose(y0, y1, atol=2 ** -6)  # one bfloat16 rounding step at |y| < 4
    np.testing.assert_allclose(d0, d1, rtol=2 ** -7, atol=1e-3)
    for a, b in zip(s0, s1):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_relu_after_the_layer_fuses_into_the_batch_norm_kernel_in_training(dtype):
    """conv → batch norm → ReLU, as the U-Net and PSPNet blocks: oneDNN runs batch norm and ReLU as one
    kernel (FusedBatchNormEx), so no separate Relu pass over the activations is left in a training step.
    A Reshape between the kernel and the ReLU (once there, even an identity one) hides the pattern."""
    inputs = keras.Input((16, 16, 16))
    x = inputs
    for i in range(2):
        x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, dtype=dtype)(x)
        x = FusedBatchNormalization(dtype=dtype)(x)
        x = keras.layers.Activation("relu", dtype=dtype)(x)
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, dtype="float32")(x))
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 16, 16, 16)).astype("float32")
    y = rng.normal(size=(2, 16, 16, 1)).astype("float32")
    ran = {op_type for _, op_type in training_step_ops(model, x, y)}
    assert "Relu" not in ran
    assert any("FusedBatchNormEx" in t for t in ran)
