"""U-Net (Ronneberger et al., 2015), 2-D, with batch norm, for binary lesion segmentation.

`depth` is the number of 2× down-samplings (so H and W must be divisible by 2**depth) and level l has
`base_width · 2**l` filters: two (3×3 conv, BN, ReLU) per level, 2×2 max pooling down, 2×2 transposed
conv up (computed as a 1×1 conv and a pixel shuffle: `subpixel_upconv`), skip connections by
concatenation, dropout at the bottleneck, a 1×1 classifier and a float32 sigmoid output named "mask". 'same' padding throughout, so output size = input size.
"""

from __future__ import annotations

import keras

from islesbench.models.batch_norm import FusedBatchNormalization
from islesbench.models.initialization import prior_bias
from islesbench.models.resnet50_dilated import BN_MOMENTUM
from islesbench.models.subpixel_upconv import SubpixelConv2DTranspose


def _double_conv(x, filters: int, name: str):
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = FusedBatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def build_unet(
    input_channels: int,
    input_size: int | None = None,
    base_width: int = 32,
    depth: int = 4,
    dropout: float = 0.1,
) -> keras.Model:
    """Classic 2-D U-Net.

    Args:
        input_channels: C, the number of input channels.
        input_size: H = W in pixels, divisible by 2**depth; None for any such size.
        base_width: filters of the first level (level l has base_width · 2**l).
        depth: the number of 2× down-samplings.
        dropout: dropout rate at the bottleneck.

    Returns:
        A keras.Model from float32 "image" (H, W, C) to float32 sigmoid "mask" (H, W, 1) probabilities.
    """
    inputs = keras.Input((input_size, input_size, input_channels), name="image")
    x = inputs
    skips = []
    for level in range(depth):
        x = _double_conv(x, base_width * 2**level, f"unet_down{level}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"unet_pool{level}")(x)
    x = _double_conv(x, base_width * 2**depth, "unet_bottleneck")
    x = keras.layers.Dropout(dropout, name="unet_bottleneck_dropout")(x)
    for level in reversed(range(depth)):
        filters = base_width * 2**level
        x = SubpixelConv2DTranspose(filters, 2, strides=2, name=f"unet_up{level}_upconv")(x)
        x = keras.layers.Concatenate(name=f"unet_up{level}_concat")([x, skips[level]])
        x = _double_conv(x, filters, f"unet_up{level}")
    x = keras.layers.Conv2D(1, 1, bias_initializer=prior_bias(), name="unet_logits")(x)
    mask = keras.layers.Activation("sigmoid", dtype="float32", name="mask")(x)
    return keras.Model(inputs, mask, name="unet")
