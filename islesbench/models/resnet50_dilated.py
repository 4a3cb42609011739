"""Dilated ResNet-50 encoder (output stride 8), layer for layer compatible with `keras.applications.ResNet50`.

Zhao et al.'s PSPNet keeps the feature map at 1/8 of the input: stages 4 and 5 run with stride 1 and their
3×3 convolutions dilated by 2 and 4. Strides and dilation rates do not change any kernel's shape, so every
layer here has the name and weight shapes of its counterpart in `keras.applications.ResNet50`
(`conv1_conv`, `conv2_block1_1_conv`, …, `conv5_block3_3_bn`) and ImageNet (or any ResNet-50) weights map
onto it by name — see `islesbench.models.pretrained`. Only `conv1_conv`'s input channels differ when the
input is not RGB; `pretrained.adapt_input_conv` handles that.
"""

from __future__ import annotations

import keras

from islesbench.models.batch_norm import FusedBatchNormalization
from islesbench.models.initialization import RESIDUAL_GAMMA

# Stage name -> (filters, blocks, stride of the first block, dilation of the 3x3 convolutions).
STAGES = {
    "conv2": (64, 3, 1, 1),
    "conv3": (128, 4, 2, 1),
    "conv4": (256, 6, 1, 2),  # ResNet-50: stride 2; dilated: stride 1, dilation 2
    "conv5": (512, 3, 1, 4),  # ResNet-50: stride 2; dilated: stride 1, dilation 4
}
ENCODER_PREFIXES = ("conv1_", "pool1_", "conv2_", "conv3_", "conv4_", "conv5_")
BN_EPSILON = 1.001e-5  # as keras.applications.ResNet50
# Moving statistics settle within tens of steps, not hundreds (Keras' 0.99): short CPU runs validate in
# inference mode, and fine-tuning a pretrained encoder adapts its ImageNet statistics to CTP maps quickly.
BN_MOMENTUM = 0.9


def is_encoder_layer_name(name: str) -> bool:
    """Whether a layer belongs to the (dilated) ResNet-50 encoder.

    Args:
        name: a Keras layer name.

    Returns:
        True for the names the dilated ResNet-50 (and keras.applications.ResNet50) gives its layers.
    """
    return name.startswith(ENCODER_PREFIXES)


def _bottleneck(x, filters: int, stride: int, dilation: int, conv_shortcut: bool, name: str, conv):
    """keras.applications' `block1` (ResNet v1 bottleneck, stride on the first 1×1) with a dilated 3×3.

    `filters` arrives already scaled by the encoder width.
    """
    if conv_shortcut:
        shortcut = conv(4 * filters, 1, strides=stride, name=name + "_0_conv")(x)
        shortcut = FusedBatchNormalization(axis=-1, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name + "_0_bn")(shortcut)
    else:
        shortcut = x
    x = conv(filters, 1, strides=stride, name=name + "_1_conv")(x)
    x = FusedBatchNormalization(axis=-1, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name + "_1_bn")(x)
    x = keras.layers.Activation("relu", name=name + "_1_relu")(x)
    x = conv(filters, 3, padding="same", dilation_rate=dilation, name=name + "_2_conv")(x)
    x = FusedBatchNormalization(axis=-1, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name + "_2_bn")(x)
    x = keras.layers.Activation("relu", name=name + "_2_relu")(x)
    x = conv(4 * filters, 1, name=name + "_3_conv")(x)
    # gamma 0: the block starts as the identity (islesbench.models.initialization).
    x = FusedBatchNormalization(axis=-1, epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                           gamma_initializer=RESIDUAL_GAMMA, name=name + "_3_bn")(x)
    x = keras.layers.Add(name=name + "_add")([shortcut, x])
    return keras.layers.Activation("relu", name=name + "_out")(x)


def scaled(channels: int, width: float) -> int:
    """The channel count of a width-scaled layer.

    Args:
        channels: the layer's channels in ResNet-50 (or the PSP head).
        width: the encoder width multiplier (1.0: ResNet-50 itself).

    Returns:
        round(channels · width), at least 8.
    """
    return max(8, int(round(channels * width)))


def resnet50_dilated(inputs, width: float = 1.0, conv=keras.layers.Conv2D) -> dict:
    """Apply the dilated ResNet-50 to a Keras tensor.

    Args:
        inputs: (B, H, W, C) Keras tensor, H and W divisible by 8.
        width: scales every layer's channels (1.0 is ResNet-50 itself, the only width pretrained
            ResNet-50 weights fit; the quick CPU profile uses 0.125, about a sixtieth of the FLOPs, with
            the same depth and dilations).
        conv: the convolution layer class: keras.layers.Conv2D, or a subclass with the same weights
            (`islesbench.models.matmul_gradients.MatmulGradientConv2D`).

    Returns:
        {"conv1".."conv5": stage outputs}: conv1 (the stem's activation, before pooling: the restoration
        decoder's last skip) (B, H/2, W/2, 64·width), conv2 (B, H/4, W/4, 256·width), conv3–conv5
        (B, H/8, W/8, 512/1024/2048·width).
    """
    x = keras.layers.ZeroPadding2D(padding=3, name="conv1_pad")(inputs)
    x = conv(scaled(64, width), 7, strides=2, name="conv1_conv")(x)
    x = FusedBatchNormalization(axis=-1, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="conv1_bn")(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    outputs = {"conv1": x}
    x = keras.layers.ZeroPadding2D(padding=1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, (filters, blocks, stride, dilation) in STAGES.items():
        f = scaled(filters, width)
        x = _bottleneck(x, f, stride, dilation, conv_shortcut=True, name=f"{stage}_block1", conv=conv)
        for i in range(2, blocks + 1):
            x = _bottleneck(x, f, 1, dilation, conv_shortcut=False, name=f"{stage}_block{i}", conv=conv)
        outputs[stage] = x
    return outputs
