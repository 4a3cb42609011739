"""Conv3DSliceGrad and Conv3DTransposeSliceGrad compute what Keras' 3-D convolutions compute, and their
reduced-precision kernel gradients never reach oneDNN's 3-D kernel-gradient kernel (it overflows its
buffer on AMX CPUs for planes it splits into row blocks: 256² V-Net slabs, thin slabs at 128²)."""

import collections

import keras
import numpy as np
import pytest

from islesbench.models import conv3d
from islesbench.models.conv3d import (Conv3DSliceGrad,
                                      Conv3DTransposeSliceGrad,
                                      kernel_gradient_by_slices)


@pytest.mark.parametrize("depth,kernel,strides,padding", [
    (8, (1, 5, 5), (1, 1, 1), "SAME"), (8, (3, 5, 5), (1, 1, 1), "SAME"), (7, (5, 3, 3), (1, 1, 1), "SAME"),
    (7, (2, 2, 2), (2, 2, 2), "SAME"), (9, (3, 3, 3), (2, 2, 2), "SAME"), (8, (1, 2, 2), (1, 2, 2), "VALID"),
    (7, (3, 3, 3), (2, 1, 1), "VALID"), (1, (3, 5, 5), (1, 1, 1), "SAME")])
def test_kernel_gradient_by_slices_is_the_3d_kernel_gradient(depth, kernel, strides, padding):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, depth, 12, 10, 3)).astype("float32"))
    w_shape = (*kernel, 3, 4)
    y_shape = tf.nn.conv3d(x, tf.zeros(w_shape), [1, *strides, 1], padding).shape
    dy = tf.constant(rng.normal(size=y_shape).astype("float32"))
    expected = tf.raw_ops.Conv3DBackpropFilterV2(input=x, filter_sizes=w_shape, out_backprop=dy,
                                                 strides=[1, *strides, 1], padding=padding)
    # Depth unknown when traced, as in V-Net (any slab depth).
    sliced = tf.function(lambda a, b: kernel_gradient_by_slices(a, b, w_shape, strides, padding), input_signature=[
        tf.TensorSpec([None, None, *x.shape[2:]]), tf.TensorSpec([None, None, *y_shape[2:]])])
    np.testing.assert_allclose(sliced(x, dy), expected, rtol=1e-5, atol=1e-5)


def _layer_pairs():
    return [
        (keras.layers.Conv3D, Conv3DSliceGrad, {"filters": 4, "kernel_size": (3, 5, 5), "padding": "same"}),
        (keras.layers.Conv3D, Conv3DSliceGrad, {"filters": 4, "kernel_size": 1}),
        (keras.layers.Conv3D, Conv3DSliceGrad,
         {"filters": 4, "kernel_size": (1, 2, 2), "strides": (1, 2, 2), "padding": "same", "use_bias": False}),
        (keras.layers.Conv3D, Conv3DSliceGrad, {"filters": 4, "kernel_size": 2, "strides": 2, "padding": "same"}),
        (keras.layers.Conv3DTranspose, Conv3DTransposeSliceGrad,
         {"filters": 4, "kernel_size": (1, 2, 2), "strides": (1, 2, 2), "use_bias": False}),
        (keras.layers.Conv3DTranspose, Conv3DTransposeSliceGrad, {"filters": 4, "kernel_size": 2, "strides": 2}),
        (keras.layers.Conv3DTranspose, Conv3DTransposeSliceGrad,
         {"filters": 4, "kernel_size": 3, "strides": (1, 2, 2), "padding": "same"}),
    ]


def _outputs_and_gradients(layer, x, upstream):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(y, "float32") * upstream)
    grads = tape.gradient(loss, [x, *layer.trainable_variables])
    return [tf.cast(t, "float32").numpy() for t in (y, *grads)]


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "float32"])
@pytest.mark.parametrize("index", range(len(_layer_pairs())))
def test_same_outputs_and_gradients_as_keras(policy, index):
    import tensorflow as tf

    plain_cls, sliced_cls, kwargs = _layer_pairs()[index]
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 4, 8, 8, 3)).astype("float32"))
    plain, sliced = plain_cls(dtype=policy, **kwargs), sliced_cls(dtype=policy, **kwargs)
    plain.build(x.shape)
    sliced.build(x.shape)
    sliced.set_weights(plain.get_weights())
    upstream = tf.constant(np.random.default_rng(2).normal(size=plain.compute_output_shape(x.shape)).astype("float32"))
    expected = _outputs_and_gradients(plain, x, upstream)
    got = _outputs_and_gradients(sliced, x, upstream)
    tolerance = 2 ** -7 if policy == "mixed_bfloat16" else 1e-5  # bfloat16: about one rounding step
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance * np.abs(b).max())


def _op_counts(layer, shape):
    import tensorflow as tf

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(layer(x), "float32"))
        return tape.gradient(loss, layer.trainable_variables)

    graph = step.get_concrete_function(tf.TensorSpec(shape)).graph
    return collections.Counter(op.type for op in graph.get_operations())


@pytest.fixture(autouse=True)
def on_cpu(monkeypatch):
    """The CPU path (oneDNN's), on any machine; test_gpu_runs_keras_code puts it back to a GPU's."""
    monkeypatch.setattr(conv3d, "runs_on_cpu", lambda: True)


def test_bfloat16_kernel_gradients_go_through_the_2d_op_and_float32_is_unchanged():
    shape = (2, 4, 8, 8, 3)
    for cls in (Conv3DSliceGrad, Conv3DTransposeSliceGrad):
        bf16 = _op_counts(cls(4, (3, 2, 2), strides=(1, 2, 2), dtype="mixed_bfloat16"), shape)
        fp32 = _op_counts(cls(4, (3, 2, 2), strides=(1, 2, 2)), shape)
        assert bf16["Conv3DBackpropFilterV2"] == 0 and bf16["Conv2DBackpropFilter"] == 3  # one per depth tap
        assert fp32["Conv3DBackpropFilterV2"] == 1 and fp32["Conv2DBackpropFilter"] == 0


@pytest.mark.parametrize("shape,kernel,filters", [
    ((1, 1, 128, 128, 16), (1, 5, 5), 16),  # one slice of a plane oneDNN splits: a heap overflow on AMX before
    ((2, 1, 128, 128, 32), (3, 5, 5), 32),  # a thin slab: NaN kernel gradients on AMX before
])
def test_bfloat16_kernel_gradient_where_onednn_splits_the_plane(shape, kernel, filters):
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(3).normal(size=shape).astype("float32"))
    layers = [Conv3DSliceGrad(filters, kernel, padding="same", dtype=p) for p in ("mixed_bfloat16", "float32")]
    for layer in layers:
        layer.build(x.shape)
    layers[0].set_weights(layers[1].get_weights())
    grads = []
    for layer in layers:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(layer(x), "float32") ** 2)
        grads.append(tape.gradient(loss, layer.kernel).numpy())
    assert np.all(np.isfinite(grads[0]))
    assert np.abs(grads[0] - grads[1]).max() <= 0.02 * np.abs(grads[1]).max()


def test_gpu_runs_keras_code(monkeypatch):
    monkeypatch.setattr(conv3d, "runs_on_cpu", lambda: False)
    for cls in (Conv3DSliceGrad, Conv3DTransposeSliceGrad):
        ops = _op_counts(cls(4, (3, 2, 2), strides=(1, 2, 2), dtype="mixed_bfloat16"), (2, 4, 8, 8, 3))
        assert ops["Conv3DBackpropFilterV2"] == 1 and ops["Conv2DBackpropFilter"] == 0


def test_layers_save_and_load(tmp_path):
    inputs = keras.Input((None, 8, 8, 2))
    x = Conv3DSliceGrad(4, (3, 3, 3), padding="same", name="conv")(inputs)
    x = Conv3DTransposeSliceGrad(2, (1, 2, 2), strides=(1, 2, 2), name="up")(x)
    model = keras.Model(inputs, x)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.get_layer("conv")) is Conv3DSliceGrad
    assert type(loaded.get_layer("up")) is Conv3DTransposeSliceGrad
    sample = np.random.default_rng(4).normal(size=(1, 3, 8, 8, 2)).astype("float32")
    np.testing.assert_allclose(loaded(sample), model(sample), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("depth,kernel,strides,padding", [
    (8, (1, 5, 5), (1, 1, 1), "same"), (8, (3, 5, 5), (1, 1, 1), "same"), (1, (3, 5, 5), (1, 1, 1), "same"),
    (7, (1, 2, 2), (1, 2, 2), "same"), (6, (1, 1, 1), (1, 1, 1), "valid"), (7, (3, 3, 3), (1, 2, 2), "same"),
    (5, (4, 3, 3), (1, 1, 1), "same"), (8, (1, 3, 3), (2, 2, 2), "valid"), (6, (3, 3, 3), (1, 1, 1), "valid")])
def test_conv3d_as_taps_is_the_3d_convolution(depth, kernel, strides, padding):
    """The JAX path's 2-D-tap form (written in keras.ops, so it runs here on TensorFlow) against Keras' 3-D op,
    including an even kernel depth (SAME's odd pad at the back) and a depth stride with a one-slice kernel."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, depth, 12, 10, 3)).astype("float32")
    w = rng.normal(size=(*kernel, 3, 4)).astype("float32")
    expected = keras.ops.conv(x, w, strides=strides, padding=padding)
    got = conv3d.conv3d_as_taps(keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(w), strides, padding)
    assert tuple(got.shape) == tuple(expected.shape)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(expected),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv3d_transpose_as_2d_is_the_3d_transposed_convolution(padding):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 5, 6, 7, 3)).astype("float32")
    w = rng.normal(size=(1, 2, 2, 4, 3)).astype("float32")
    expected = keras.ops.conv_transpose(x, w, strides=(1, 2, 2), padding=padding)
    got = conv3d.conv3d_transpose_as_2d(keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(w),
                                        (1, 2, 2), padding)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(expected),
                               rtol=1e-4, atol=1e-4)


def test_tap_form_only_on_jax_and_only_where_it_applies(monkeypatch):
    plain = Conv3DSliceGrad(4, (3, 5, 5), padding="same")
    isotropic_down = Conv3DSliceGrad(4, (5, 5, 5), strides=(2, 2, 2), padding="same")
    up = Conv3DTransposeSliceGrad(4, (1, 2, 2), strides=(1, 2, 2))
    assert not any(conv3d._taps(layer) for layer in (plain, isotropic_down, up))  # TensorFlow: Keras' own code
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    assert conv3d._taps(plain) and conv3d._taps(up) and not conv3d._taps(isotropic_down)
    monkeypatch.setattr(conv3d, "TAPS_ON_JAX", False)
    assert not conv3d._taps(plain)
