"""Convolution weight gradients written as matmuls: `MatmulGradientConv2D`, and when to use it (`resolve`).

The weight gradient of a stride-1 convolution is a sum over taps of one contraction each:
dW[tap] = x(N·H·W, C_in)ᵀ · dy_tap(N·H·W, C_out), where dy_tap is the output gradient shifted by the tap's
offset (times the dilation) with zeros shifted in, as 'same' padding puts zeros around x. A 1×1 kernel is one
such matmul.

Why: oneDNN's bfloat16 weight-gradient kernel (Conv2DBackpropFilter, `brgconv_bwd_w` on AMX) runs the
paper PSPNet's wide layers at a third to a half of the rate of the same contraction as a matmul:
`benchmarks/models.py --probe` measured 302–336 GFLOP/s for its 1×1 convolutions (710–785 as matmuls)
and 351 for the head's 3×3 4096→512 (its nine tap matmuls: about 800), on a 2-core AMX CPU, where that
one head gradient took 1.5 s of an 8 s training step. On the U-Net's narrow, wide-image layers it is the other way round
(oneDNN 900–1040 GFLOP/s, the matmuls 75–430), so only the PSPNet uses this layer, and only where
`resolve` says so. The input gradient stays the backend's (a transposed convolution) and the forward pass
is untouched; the weight gradients sum in another order, so training is not bit-identical to Keras' layer.

`ModelConfig.weight_gradients`: "native" (the backend's kernels), "matmul" (this layer's), or "auto":
matmul where it was measured to pay, the full-width PSPNet on TensorFlow on a CPU in mixed bfloat16;
native elsewhere (GPUs, float32, JAX, the quick profile's narrow PSPNet). A run stores the resolved value.
"""

from __future__ import annotations

import keras
from keras import ops


def resolve(choice: str, precision: str, encoder_width: float = 1.0) -> str:
    """`choice` with "auto" replaced: "matmul" for the full-width PSPNet trained by TensorFlow on a CPU in
    mixed bfloat16, else "native".

    Full width only: the quick profile's eighth-width PSPNet measured 3–6 % slower a step with the matmul
    form (0.320–0.325 s against 0.307–0.312 s, `benchmarks/models.py --weight-gradients`), its layers
    being too narrow for oneDNN's weight-gradient kernel to fall behind.

    Args:
        choice: one of islesbench.config.WEIGHT_GRADIENTS.
        precision: the resolved training precision (a Keras dtype policy name).
        encoder_width: the PSPNet's ModelConfig.encoder_width.

    Returns:
        "native" or "matmul".
    """
    if choice != "auto":
        return choice
    if precision != "mixed_bfloat16" or keras.backend.backend() != "tensorflow" or encoder_width < 1.0:
        return "native"
    import tensorflow as tf

    return "native" if tf.config.list_physical_devices("GPU") else "matmul"


def conv2d_class(weight_gradients: str):
    """keras.layers.Conv2D for "native", MatmulGradientConv2D for "matmul" (resolve "auto" first)."""
    if weight_gradients not in ("native", "matmul"):
        raise ValueError(f"weight_gradients must be 'native' or 'matmul' here, not {weight_gradients!r}")
    return MatmulGradientConv2D if weight_gradients == "matmul" else keras.layers.Conv2D


def _weight_gradient(rows, upstream):
    """rowsᵀ · upstream, (C_in, C_out), with the smaller of C_in, C_out as the matmul's output rows: oneDNN's
    bfloat16 matmul with a transposed first operand measured 10–15 % faster that way round (e.g. 4096→512:
    811 against 711 GFLOP/s; 512→2048: 875 against 786)."""
    if rows.shape[-1] > upstream.shape[-1]:
        return ops.transpose(ops.matmul(ops.transpose(upstream), rows))
    return ops.matmul(ops.transpose(rows), upstream)


def _tap_matmul_conv(x, kernel, bias, dilation: int):
    """Stride-1 'same' convolution (+ bias) whose kernel and bias gradients are matmuls."""
    size, cin, cout = kernel.shape[0], kernel.shape[2], kernel.shape[3]
    reach = dilation * (size - 1) // 2  # the padding on each side

    @ops.custom_gradient
    def conv(x, kernel, *bias):
        y = ops.conv(x, kernel, strides=1, padding="same", dilation_rate=dilation)
        if bias:
            y = ops.add(y, ops.reshape(bias[0], (1, 1, 1, cout)))

        def grad(*args, upstream=None):
            dy = args[0] if upstream is None else upstream
            shape = ops.shape(dy)
            height, width = shape[1], shape[2]
            rows = ops.reshape(x, (-1, cin))
            padded = ops.pad(dy, ((0, 0), (reach, reach), (reach, reach), (0, 0))) if reach else dy
            taps = []
            for i in range(size):
                for j in range(size):
                    top, left = 2 * reach - dilation * i, 2 * reach - dilation * j
                    shifted = dy if (top, left) == (reach, reach) else padded[:, top:top + height, left:left + width, :]
                    taps.append(_weight_gradient(rows, ops.reshape(shifted, (-1, cout))))
            d_kernel = ops.reshape(ops.stack(taps), (size, size, cin, cout))
            d_x = ops.conv_transpose(dy, kernel, strides=1, padding="same", dilation_rate=dilation)
            grads = [d_x, d_kernel]
            if bias:  # a ones-row matmul: summed in float32 inside the kernel, as BiasAddGrad does
                flat = ops.reshape(dy, (-1, cout))
                ones = ops.ones((1, ops.shape(flat)[0]), dtype=dy.dtype)
                grads.append(ops.reshape(ops.matmul(ones, flat), (cout,)))
            return grads

        return y, grad

    return conv(x, kernel, bias) if bias is not None else conv(x, kernel)


@keras.saving.register_keras_serializable(package="islesbench")
class MatmulGradientConv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D whose weight gradients are matmuls for stride-1 convolutions with a square,
    odd kernel and 'same' padding (or 1×1); other convolutions use Keras' call.

    Same weights, names and config as keras.layers.Conv2D, so checkpoints and pretrained weights load
    either way.

    Args:
        **kwargs: as keras.layers.Conv2D.

    Call: `layer(inputs)` with inputs (B, H, W, C_in); returns (B, H', W', filters) as Conv2D.
    """

    def _matmul_form(self) -> bool:
        kh, kw = self.kernel_size
        return (tuple(self.strides) == (1, 1) and self.groups == 1 and self.data_format == "channels_last"
                and kh == kw and kh % 2 == 1 and (self.padding == "same" or kh == 1)
                and self.dilation_rate[0] == self.dilation_rate[1])

    def call(self, inputs):
        if not self._matmul_form():
            return super().call(inputs)
        # Tensors, not the variables (in float32 the TensorFlow backend hands the variable itself through,
        # and tf.custom_gradient would then want the variables' gradients from `grad`).
        kernel = ops.copy(self.kernel)
        bias = ops.copy(self.bias) if self.use_bias else None
        y = _tap_matmul_conv(inputs, kernel, bias, self.dilation_rate[0])
        return self.activation(y) if self.activation is not None else y
