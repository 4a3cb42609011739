"""Conv3D and Conv3DTranspose whose reduced-precision kernel gradient avoids oneDNN's 3-D bwd-weights kernel.

`Conv3DSliceGrad` and `Conv3DTransposeSliceGrad` are Keras' layers with the same weights, names, shapes
and forward computation; only the gradient with respect to the kernel is computed differently, and only
on TensorFlow in bfloat16 or float16: as one 2-D kernel gradient (Conv2DBackpropFilter over the slabs
folded to (B·D, H, W, C)) per depth tap of the kernel, summing the same products as the 3-D op.

Why: on CPUs with AMX, oneDNN (v3.7.3 in TF 2.21) computes bfloat16/float16 3-D kernel gradients with
`brgconv_bwd_w:avx10_1_512_amx`, whose 3-D harness (`compute_diff_weights_3d`) transposes each block of
output rows to its absolute row offset in a per-thread buffer sized for one block per depth slice. When
a slice's plane is larger than its L2 budget, oneDNN splits the rows into blocks, and the later
blocks are written past the buffer: a heap overflow. The paper V-Net at 256² crashes in its first
training step (SIGSEGV, SIGILL or `free(): invalid next size`); thinner slabs at 128² return NaN kernel
gradients without crashing. The 2-D harness handles the same row blocking correctly, and float32 uses
another kernel, so float32 (and every forward pass and input gradient) runs Keras' own code unchanged,
and so does a TensorFlow that sees a GPU.

On the JAX backend both layers compute a convolution whose kernel is one slice deep or whose depth stride
is 1 (every convolution of the anisotropic V-Net) as 2-D convolutions: one per depth tap of the kernel over
the slab folded to (B·D, H, W, C), summed (`conv3d_as_taps`), and the transposed one as a 2-D transposed
convolution over the folded slab. The same products, summed in another order. Why: XLA hands 3-D
convolutions to cuDNN's 3-D kernels, and their backward passes in bfloat16 are slow on an H200
(`benchmarks/layers_jax.py` times each form per layer); 2-D ones get cuDNN's tuned kernels. The isotropic
V-Net's 5×5×5 stride-2 convolutions keep the native op. `TAPS_ON_JAX = False` restores Keras' own code
(the benchmarks compare both).
"""

from __future__ import annotations

import keras

# TensorFlow is imported inside the functions, only when the TensorFlow backend runs them.

REDUCED_DTYPES = ("bfloat16", "float16")
TAPS_ON_JAX = True


def _taps(layer) -> bool:
    """Whether `layer` runs as 2-D convolutions: the JAX backend, plain channels-last, and a one-slice kernel
    or depth stride 1 (a transposed convolution needs both)."""
    one_slice, unit_stride = layer.kernel_size[0] == 1, layer.strides[0] == 1
    shape_fits = (one_slice and unit_stride) if isinstance(layer, keras.layers.Conv3DTranspose) else (
        one_slice or unit_stride)
    return (TAPS_ON_JAX and keras.backend.backend() == "jax" and shape_fits
            and layer.data_format == "channels_last" and getattr(layer, "groups", 1) == 1
            and all(rate == 1 for rate in layer.dilation_rate))


def conv3d_as_taps(inputs, kernel, strides, padding: str):
    """A channels-last 3-D convolution as one 2-D convolution per depth tap of the kernel, summed.

    Args:
        inputs: (B, D, H, W, Ci) with static H, W and Ci.
        kernel: (kd, kh, kw, Ci, Co).
        strides: (sd, sh, sw); sd must be 1 unless kd is 1.
        padding: "same" or "valid" (Keras' names; TensorFlow's rule: a SAME pad puts the odd voxel at the back).

    Returns:
        (B, Do, Ho, Wo, Co), what keras.ops.conv returns for the 3-D convolution.
    """
    _, _, h, w, c = inputs.shape
    kd = kernel.shape[0]
    batch = keras.ops.shape(inputs)[0]

    def conv2d(slab, tap):
        y = keras.ops.conv(keras.ops.reshape(slab, (-1, h, w, c)), tap, strides=strides[1:], padding=padding)
        return keras.ops.reshape(y, (batch, -1, *y.shape[1:]))

    if kd == 1:
        return conv2d(inputs[:, :: strides[0]], kernel[0])
    front = (kd - 1) // 2 if padding == "same" else 0
    padded = keras.ops.pad(inputs, ((0, 0), (front, kd - 1 - front if padding == "same" else 0), (0, 0), (0, 0),
                                    (0, 0)))
    out_depth = keras.ops.shape(padded)[1] - kd + 1
    total = conv2d(padded[:, 0:out_depth], kernel[0])
    for k in range(1, kd):
        total = total + conv2d(padded[:, k: k + out_depth], kernel[k])
    return total


def conv3d_transpose_as_2d(inputs, kernel, strides, padding: str):
    """A channels-last transposed 3-D convolution with a one-slice kernel and depth stride 1, as a 2-D one.

    Args:
        inputs: (B, D, H, W, Ci) with static H, W and Ci.
        kernel: (1, kh, kw, Co, Ci), Keras' Conv3DTranspose layout.
        strides: (1, sh, sw).
        padding: "same" or "valid".

    Returns:
        (B, D, Ho, Wo, Co), what keras.ops.conv_transpose returns for the 3-D transposed convolution.
    """
    _, _, h, w, c = inputs.shape
    batch = keras.ops.shape(inputs)[0]
    y = keras.ops.conv_transpose(keras.ops.reshape(inputs, (-1, h, w, c)), kernel[0], strides=strides[1:],
                                 padding=padding)
    return keras.ops.reshape(y, (batch, -1, *y.shape[1:]))


def _slice_grad(layer, inputs) -> bool:
    """Whether `layer` computes its kernel gradient slice by slice: TF on the CPU, reduced precision, plain
    channels-last."""
    return (keras.backend.backend() == "tensorflow"
            and keras.backend.standardize_dtype(inputs.dtype) in REDUCED_DTYPES
            and layer.data_format == "channels_last" and getattr(layer, "groups", 1) == 1
            and all(rate == 1 for rate in layer.dilation_rate) and runs_on_cpu())


def runs_on_cpu() -> bool:
    """TensorFlow sees no GPU, so the convolutions run on the CPU under oneDNN (cuDNN's are not at fault)."""
    import tensorflow as tf

    return not tf.config.list_logical_devices("GPU")


def kernel_gradient_by_slices(inputs, out_backprop, kernel_shape, strides, padding: str):
    """Conv3DBackpropFilterV2 (channels-last, no dilation) computed as one 2-D kernel gradient per depth tap.

    Args:
        inputs: (B, D, H, W, Ci), the convolution's input (a transposed convolution's output gradient).
        out_backprop: (B, Do, Ho, Wo, Co), the gradient of the convolution's output (a transposed
            convolution's input).
        kernel_shape: (kd, kh, kw, Ci, Co), static.
        strides: (sd, sh, sw).
        padding: "SAME" or "VALID".

    Returns:
        The kernel gradient, (kd, kh, kw, Ci, Co), in the inputs' dtype.
    """
    import tensorflow as tf

    kd, kh, kw, ci, co = (int(n) for n in kernel_shape)
    sd, sh, sw = (int(s) for s in strides)
    dy_shape = tf.shape(out_backprop)
    dy = tf.reshape(out_backprop, tf.concat([[-1], dy_shape[2:]], 0))
    if kd == 1 and sd == 1:
        slices = [inputs]  # output slice d reads input slice d: the slabs folded as they are
    else:
        # Output slice d reads input slice d·sd + k - front for tap k (TF's SAME: front = total // 2; VALID: 0).
        depth, out_depth = tf.shape(inputs)[1], dy_shape[1]
        span = (out_depth - 1) * sd + kd
        front = tf.maximum(span - depth, 0) // 2 if padding == "SAME" else 0
        back = tf.maximum(span - front - depth, 0)
        padded = tf.pad(inputs, tf.stack([[0, 0], [front, back], [0, 0], [0, 0], [0, 0]]))
        slices = [padded[:, k: k + (out_depth - 1) * sd + 1: sd] for k in range(kd)]
    taps = []
    for x in slices:
        x = tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0))
        taps.append(tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=[kh, kw, ci, co], out_backprop=dy, strides=[1, sh, sw, 1], padding=padding))
    return tf.stack(taps)


def _conv3d(inputs, kernel, strides, padding: str):
    import tensorflow as tf

    strides5 = [1, *strides, 1]

    @tf.custom_gradient
    def conv(x, w):
        def grad(dy):
            dx = tf.raw_ops.Conv3DBackpropInputV2(
                input_sizes=tf.shape(x), filter=w, out_backprop=dy, strides=strides5, padding=padding)
            return dx, kernel_gradient_by_slices(x, dy, w.shape, strides, padding)

        return tf.nn.conv3d(x, w, strides5, padding), grad

    return conv(inputs, kernel)


def _conv3d_transpose(inputs, kernel, output_shape, strides, padding: str):
    import tensorflow as tf

    strides5 = [1, *strides, 1]

    @tf.custom_gradient
    def conv_transpose(x, w):
        def grad(dy):
            dx = tf.nn.conv3d(dy, w, strides5, padding)
            return dx, kernel_gradient_by_slices(dy, x, w.shape, strides, padding)

        return tf.raw_ops.Conv3DBackpropInputV2(
            input_sizes=output_shape, filter=w, out_backprop=x, strides=strides5, padding=padding), grad

    return conv_transpose(inputs, kernel)


@keras.saving.register_keras_serializable(package="islesbench")
class Conv3DSliceGrad(keras.layers.Conv3D):
    """keras.layers.Conv3D; in bfloat16/float16 on TensorFlow its kernel gradient is computed slice by slice.

    Args and call: as keras.layers.Conv3D (see the module docstring for what differs, and why).
    """

    def convolution_op(self, inputs, kernel):
        if _taps(self):
            return conv3d_as_taps(inputs, kernel, self.strides, self.padding)
        if not _slice_grad(self, inputs):
            return super().convolution_op(inputs, kernel)
        import tensorflow as tf

        return _conv3d(inputs, tf.cast(kernel, inputs.dtype), self.strides, self.padding.upper())


@keras.saving.register_keras_serializable(package="islesbench")
class Conv3DTransposeSliceGrad(keras.layers.Conv3DTranspose):
    """keras.layers.Conv3DTranspose; in bfloat16/float16 on TensorFlow its kernel gradient is computed slice
    by slice.

    Args and call: as keras.layers.Conv3DTranspose (see the module docstring).
    """

    def call(self, inputs):
        if self.output_padding is not None or not (_taps(self) or _slice_grad(self, inputs)):
            return super().call(inputs)
        if _taps(self):
            outputs = conv3d_transpose_as_2d(inputs, self.kernel, self.strides, self.padding)
        else:
            import tensorflow as tf

            shape = tf.shape(inputs)
            sizes = [_transposed_size(shape[i + 1], self.kernel_size[i], self.strides[i], self.padding)
                     for i in range(3)]
            output_shape = tf.stack([shape[0], *sizes, self.filters])
            outputs = _conv3d_transpose(inputs, tf.cast(self.kernel, inputs.dtype), output_shape, self.strides,
                                        self.padding.upper())
        if self.use_bias:  # Keras' own bias and activation code (channels-last), so the same numbers
            outputs = keras.ops.add(outputs, keras.ops.reshape(self.bias, (1,) * (self.rank + 1) + (self.filters,)))
        return self.activation(outputs) if self.activation is not None else outputs


def _transposed_size(size, kernel: int, stride: int, padding: str):
    """A transposed convolution's output length without output padding, by Keras' rule (deconv_output_length)."""
    return size * stride if padding == "same" else size * stride + max(kernel - stride, 0)
