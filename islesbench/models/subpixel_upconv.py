"""A transposed convolution whose kernel equals its stride, computed as a 1×1 convolution and a pixel shuffle.

With kernel size = stride (the U-Net's 2×2, stride-2 up-convolution) the output windows do not overlap:
output pixel (s·i + a, s·j + b) is input pixel (i, j) times kernel tap (a, b), plus the bias. That is a 1×1
convolution to s·s·C_out channels followed by rearranging those channels into s×s blocks. The sums are the
same (each output sums over the input channels only), so the forward outputs are the same numbers.

Why: TensorFlow runs a transposed convolution as Conv2DBackpropInput and adds its bias with a separate
BiasAdd, whose bfloat16 Eigen kernels (forward and gradient) are about three times slower than in float32;
a 1×1 convolution takes its bias inside oneDNN's fused kernel and its bias gradient inside the weight
gradient. Measured on the paper U-Net, bfloat16, 16 slices at 256², on a 2-core AMX CPU: 1.86 → 1.77 s a
training step (benchmarks/results/README.md). The gradients sum in another order than TensorFlow's
transposed-convolution gradient, so training is not bit-identical to Keras' layer.

The layer is `keras.layers.Conv2DTranspose` with the same weights (kernel (s, s, C_out, C_in), bias), names
and config, so checkpoints of either load into the other; other kernel/stride combinations use Keras' call.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="islesbench")
class SubpixelConv2DTranspose(keras.layers.Conv2DTranspose):
    """keras.layers.Conv2DTranspose, computed as a 1×1 convolution and a pixel shuffle when kernel = stride.

    Args:
        **kwargs: as keras.layers.Conv2DTranspose (filters, kernel_size, strides, use_bias, name, …).

    Call: `layer(inputs)` with inputs (B, H, W, C_in); returns (B, s·H, s·W, filters).
    """

    def _shuffles(self) -> bool:
        kh, kw = self.kernel_size
        return (tuple(self.kernel_size) == tuple(self.strides) and tuple(self.dilation_rate) == (1, 1)
                and self.data_format == "channels_last" and self.output_padding is None and kh == kw)

    def call(self, inputs):
        if not self._shuffles():
            return super().call(inputs)
        s = self.kernel_size[0]
        kernel = ops.convert_to_tensor(self.kernel)
        cout, cin = kernel.shape[2], kernel.shape[3]
        # (s, s, C_out, C_in) -> (1, 1, C_in, s·s·C_out): output channel (a·s + b)·C_out + c is tap (a, b), channel c
        pointwise = ops.reshape(ops.transpose(kernel, (3, 0, 1, 2)), (1, 1, cin, s * s * cout))
        y = ops.conv(inputs, pointwise, strides=1, padding="valid")
        if self.use_bias:
            y = ops.add(y, ops.reshape(ops.tile(self.bias, (s * s,)), (1, 1, 1, s * s * cout)))
        shape = ops.shape(y)
        y = ops.reshape(y, (shape[0], shape[1], shape[2], s, s, cout))
        y = ops.transpose(y, (0, 1, 3, 2, 4, 5))
        y = ops.reshape(y, (shape[0], shape[1] * s, shape[2] * s, cout))
        return self.activation(y) if self.activation is not None else y
