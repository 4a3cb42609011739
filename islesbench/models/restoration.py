"""The self-supervised pretraining network: PSPNet's dilated ResNet-50 encoder and a light restoration decoder.

`islesbench pretrain` trains it to restore distorted slices (islesbench.data.restoration_pairs). Its encoder is built by
the same function as PSPNet's (`resnet50_dilated`), so every encoder layer has PSPNet's name and, at the
same `encoder_width`, its weight shapes: `--pretrained FILE.keras` copies them by name
(islesbench.models.pretrained) and leaves the decoder behind. The decoder's layers are named
`restore_*`, which no PSPNet layer is.

Decoder (U-Net-like, as Models Genesis' restoration network, but light: the encoder is what is kept):
stage 5 (1/8) reduced by a 1×1 conv, bilinear ×2 and concatenated with stage 2 (1/4), a 3×3 conv, ×2
and concatenated with conv1 (1/2), a 3×3 conv, ×2 to the input, a 3×3 conv and a 1×1 conv to one
sigmoid output per input channel (the [0, 1] target of the restoration).
"""

from __future__ import annotations

import keras
import numpy as np

from islesbench.models.initialization import prior_bias
from islesbench.models.pspnet import conv_bn_relu
from islesbench.models.resnet50_dilated import resnet50_dilated, scaled

DECODER_CHANNELS = 256  # at the first decoder stage, before the encoder width scales it; halved per stage


def build_restoration_model(input_channels: int, input_size: int, encoder_width: float = 1.0,
                            output_prior=None) -> keras.Model:
    """The encoder–decoder that restores distorted slices.

    Args:
        input_channels: C, the number of input (and output) channels.
        input_size: S, the side of the (S, S, C) slices in pixels, divisible by 8.
        encoder_width: the ResNet-50 width multiplier (as PSPNet's `encoder_width`).
        output_prior: (C,) values in (0, 1), e.g. the mean target, at which each sigmoid output starts
            instead of 0.5: the [0, 1]-scaled maps are mostly dark (background 0, rCBF ≈ 0.2, Tmax ≈ 0.03),
            and from 0.5 the first few hundred steps went into learning that, the restoration staying worse
            than a constant image (the prior-bias idea of islesbench/models/initialization.py, per channel).

    Returns:
        A keras.Model from float32 "image" (S, S, C) to float32 sigmoid "restored" (S, S, C) in [0, 1].
    """
    inputs = keras.Input((input_size, input_size, input_channels), name="image")
    stages = resnet50_dilated(inputs, encoder_width)
    width = scaled(DECODER_CHANNELS, encoder_width)
    x = conv_bn_relu(stages["conv5"], width, 1, "restore_reduce")
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name="restore_up4")(x)
    x = keras.layers.Concatenate(name="restore_skip4")([x, stages["conv2"]])
    x = conv_bn_relu(x, width, 3, "restore_dec4")
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name="restore_up2")(x)
    x = keras.layers.Concatenate(name="restore_skip2")([x, stages["conv1"]])
    x = conv_bn_relu(x, max(8, width // 2), 3, "restore_dec2")
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name="restore_up1")(x)
    x = conv_bn_relu(x, max(8, width // 4), 3, "restore_dec1")
    bias = "zeros"
    if output_prior is not None:
        # a measured prior can be 0 (a channel dark on every slice of the batch): no finite logit
        bias = prior_bias(np.clip(np.asarray(output_prior, dtype="float64"), 1e-3, 1 - 1e-3))
    x = keras.layers.Conv2D(input_channels, 1, bias_initializer=bias, name="restore_logits")(x)
    outputs = keras.layers.Activation("sigmoid", dtype="float32", name="restored")(x)
    return keras.Model(inputs, outputs, name="genesis_restoration")
