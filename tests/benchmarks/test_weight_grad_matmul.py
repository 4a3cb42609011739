"""The weight-gradient experiment times the right arithmetic: its hand-written 1×1 gradients equal
TensorFlow's (so its step times compare like with like), and it leaves Keras' Conv2D as it found it."""

import keras
import numpy as np
import pytest

from benchmark_scripts import load

weight_grad_matmul = load("weight_grad_matmul")


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("use_bias", [True, False])
def test_hand_written_gradients_of_a_1x1_conv_equal_autodiff(stride, use_bias):
    import tensorflow as tf

    layer = keras.layers.Conv2D(8, 1, strides=stride, padding="same", use_bias=use_bias)
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 9, 9, 4)).astype("float32"))
    layer.build(x.shape)
    original = keras.layers.Conv2D.call
    results = []
    try:
        for call in (original, weight_grad_matmul.matmul_weight_grad_call(original)):
            keras.layers.Conv2D.call = call
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
                loss = tf.reduce_sum(y * tf.sin(y))
            grads = tape.gradient(loss, [x, *layer.trainable_weights])
            results.append([y.numpy()] + [g.numpy() for g in grads])
    finally:
        keras.layers.Conv2D.call = original
    for autodiff, by_hand in zip(*results):
        np.testing.assert_allclose(by_hand, autodiff, rtol=1e-5, atol=1e-5)


def test_other_kernels_go_to_keras_own_call():
    calls = []

    def original(self, inputs):
        calls.append(self.kernel_size)
        return inputs

    patched = weight_grad_matmul.matmul_weight_grad_call(original)
    layer = keras.layers.Conv2D(4, 3, padding="same")
    layer.build((1, 5, 5, 2))
    patched(layer, np.zeros((1, 5, 5, 2), "float32"))
    assert calls == [(3, 3)]
