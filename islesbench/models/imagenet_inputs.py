"""The input mapping an ImageNet-pretrained ResNet-50 needs: normalised CTP maps onto caffe-style statistics.

Keras' ResNet-50 weights were trained on caffe-preprocessed images (`keras.applications.resnet50.
preprocess_input`): 8-bit BGR pixels, 0–255, minus the ImageNet channel means, so inputs of order 100.
islesbench's maps are normalised to order 1 (islesbench/imaging/preprocessing.py). Fed to those weights directly,
conv1's responses are about a hundred times smaller than the ones its BatchNormalization statistics
expect, and a frozen encoder (inference-mode BN) outputs nearly the same features for every pixel.

So, when and only when the encoder starts from ResNet-50 weights (ImageNet or a ResNet-50 `.h5` file),
a fixed layer before conv1 renders each normalised channel as an 8-bit image channel would be rendered,
its clip window (`preprocessing.normalized_range`) onto 0–255, and subtracts the ImageNet mean of the
BGR channel whose kernel it gets (`pretrained.adapt_input_conv` tiles the RGB kernel, so channel c
uses kernel channel c mod 3). It has no weights, is saved with the model, and changes nothing for a
scratch or self-supervised encoder, which never get it.
"""

from __future__ import annotations

import keras

# keras.applications.imagenet_utils' caffe mode: the ImageNet means of the B, G, R channels (0–255).
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
PIXEL_RANGE = 255.0
LAYER_NAME = "imagenet_inputs"  # not an encoder layer name: nothing is transferred from or to it
# islesbench.imaging.preprocessing (SciPy) is imported inside channel_windows, to keep `islesbench --help` fast.


def channel_windows(modalities, channels: int) -> list:
    """The normalised clip window of each input channel.

    Args:
        modalities: the channels' names (e.g. "CT_CBF"), or None.
        channels: C, the number of input channels.

    Returns:
        C [low, high] pairs in normalised units; the default rule's window for every channel when
        `modalities` is None or does not name C channels.
    """
    from islesbench.imaging.preprocessing import DEFAULT_RULE, normalized_range

    if modalities and len(modalities) == channels:
        return [list(normalized_range(m)) for m in modalities]
    return [[float(DEFAULT_RULE["lo"]), float(DEFAULT_RULE["hi"])]] * channels


@keras.saving.register_keras_serializable(package="islesbench")
class CaffeInputMapping(keras.layers.Layer):
    """x_c ↦ (x_c − low_c) / (high_c − low_c) · 255 − mean_bgr[c mod 3]: fixed, per channel, no weights.

    Args:
        windows: C [low, high] pairs (`channel_windows`), in normalised units.
        **kwargs: keras.layers.Layer arguments (name, dtype).

    Call: `layer(x)` with x (B, H, W, C) normalised maps; returns (B, H, W, C) caffe-style pixel values
    (0–255 minus the ImageNet BGR mean).
    """

    def __init__(self, windows, **kwargs):
        super().__init__(**kwargs)
        self.windows = [[float(lo), float(hi)] for lo, hi in windows]

    def call(self, x):
        scale = [PIXEL_RANGE / (hi - lo) for lo, hi in self.windows]
        offset = [-lo * s - IMAGENET_BGR_MEAN[c % 3] for c, ((lo, _), s) in enumerate(zip(self.windows, scale))]
        return x * keras.ops.cast(scale, x.dtype) + keras.ops.cast(offset, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "windows": self.windows}
