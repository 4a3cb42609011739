"""PSPNet (Zhao et al., CVPR 2017) on a dilated ResNet-50, for binary lesion segmentation.

Encoder: `resnet50_dilated` (output stride 8, names compatible with keras.applications.ResNet50).
Head: the pyramid pooling module — the stage-5 features average-pooled into 1×1, 2×2, 3×3 and 6×6 bins
(adaptive to the feature size, so any input divisible by 8 works), each reduced by a 1×1 conv + BN + ReLU to
512 channels, bilinearly upsampled back and concatenated with the features; then a 3×3 conv (512) + BN +
ReLU, dropout, a 1×1 classifier (one logit) and bilinear ×8 upsampling to the input; sigmoid output "mask".

Auxiliary head (`aux_weight > 0`): as Zhao et al., a 3×3 conv (256) + BN + ReLU + dropout(0.1) + 1×1
classifier on stage 4, upsampled the same way, as a second output "aux". The model then returns a dict
{"mask": …, "aux": …}; the trainer compiles with `loss={"mask": L, "aux": L}`,
`loss_weights={"mask": 1.0, "aux": aux_weight}` (Zhao et al. use 0.4), feeds `{"mask": y, "aux": y}` as
targets, and predicts with `islesbench.models.without_aux(model)` (or reads `["mask"]`). The aux weight is a
training choice, so it is not stored in the model; only the presence of the head is.
"""

from __future__ import annotations

import keras
from keras import ops

from islesbench.models.batch_norm import FusedBatchNormalization
# imported here also so that loading a checkpoint that has the mapping finds the registered layer
from islesbench.models.imagenet_inputs import LAYER_NAME, CaffeInputMapping
from islesbench.models.initialization import prior_bias
from islesbench.models.matmul_gradients import conv2d_class
from islesbench.models.resnet50_dilated import BN_MOMENTUM, resnet50_dilated, scaled

PPM_BINS = (1, 2, 3, 6)
PPM_CHANNELS = 512
AUX_CHANNELS = 256
OUTPUT_STRIDE = 8


def _bin_average_matrix(size, bins: int, dtype):
    """(bins, size) matrix whose rows average the adaptive-pooling windows [⌊i·n/b⌋, ⌈(i+1)·n/b⌉)."""
    n = ops.cast(size, "float32")
    i = ops.cast(ops.arange(bins), "float32")
    start = ops.floor(i * n / bins)
    end = ops.ceil((i + 1.0) * n / bins)
    pos = ops.cast(ops.arange(size), "float32")
    inside = ops.logical_and(pos[None, :] >= start[:, None], pos[None, :] < end[:, None])
    weights = ops.cast(inside, "float32") / (end - start)[:, None]
    return ops.cast(weights, dtype)


def _bilinear_matrix(size, source_size, dtype):
    """(size, source_size) bilinear interpolation weights: half-pixel centres, clamped at the edges.

    As tf.image.resize(method="bilinear"); written as a triangle kernel max(0, 1 − |src − j|) so that both
    sizes may be dynamic.
    """
    n = ops.cast(size, "float32")
    m = ops.cast(source_size, "float32")
    pos = ops.cast(ops.arange(size), "float32")
    src = ops.clip((pos + 0.5) * m / n - 0.5, 0.0, m - 1.0)
    j = ops.cast(ops.arange(source_size), "float32")
    weights = ops.relu(1.0 - ops.abs(src[:, None] - j[None, :]))
    return ops.cast(weights, dtype)


def separable_contract(x, rows, cols):
    """out[b,i,j,c] = Σ_hw rows[i,h] · x[b,h,w,c] · cols[j,w]: a separable linear resampling.

    As two tensordots, not one three-operand einsum: TensorFlow's CPU einsum of three operands measured
    2–3× slower, forward and backward, on the PSPNet's stage-5 features.

    Args:
        x: (B, H, W, C) tensor.
        rows: (I, H) weights along the height.
        cols: (J, W) weights along the width.

    Returns:
        (B, I, J, C) tensor.
    """
    y = ops.tensordot(rows, x, axes=[[1], [1]])  # (I, B, W, C)
    y = ops.tensordot(cols, y, axes=[[1], [2]])  # (J, I, B, C)
    return ops.transpose(y, (2, 1, 0, 3))


@keras.saving.register_keras_serializable(package="islesbench")
class AdaptiveAveragePooling2D(keras.layers.Layer):
    """Average-pool (B, H, W, C) into (B, bins, bins, C) windows as torch's adaptive_avg_pool2d, any H, W.

    Args:
        bins: the number of windows per axis.
        **kwargs: keras.layers.Layer arguments (name, dtype).

    Call: `layer(x)` with x (B, H, W, C); returns (B, bins, bins, C).
    """

    def __init__(self, bins: int, **kwargs):
        super().__init__(**kwargs)
        self.bins = int(bins)

    def call(self, x):
        shape = ops.shape(x)
        rows = _bin_average_matrix(shape[1], self.bins, x.dtype)
        cols = _bin_average_matrix(shape[2], self.bins, x.dtype)
        return separable_contract(x, rows, cols)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.bins, self.bins, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "bins": self.bins}


@keras.saving.register_keras_serializable(package="islesbench")
class BilinearResizeLike(keras.layers.Layer):
    """Bilinearly resize `x` to the spatial size of `reference` (half-pixel centres, as tf.image.resize).

    Unlike UpSampling2D it works when h, w are unknown until run time (a model built for any input size).

    Call: `layer([x, reference])` with x (B, h, w, C) and reference (B, H, W, ·); returns (B, H, W, C).
    """

    def call(self, inputs):
        x, reference = inputs
        x_shape, ref_shape = ops.shape(x), ops.shape(reference)
        rows = _bilinear_matrix(ref_shape[1], x_shape[1], x.dtype)
        cols = _bilinear_matrix(ref_shape[2], x_shape[2], x.dtype)
        return separable_contract(x, rows, cols)

    def compute_output_shape(self, input_shapes):
        x_shape, ref_shape = input_shapes
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])


def conv_bn_relu(x, filters: int, kernel: int, name: str, conv=keras.layers.Conv2D):
    """Convolution (no bias), batch norm, ReLU: the PSP head's block (and the restoration decoder's).

    Args:
        x: (B, H, W, C) Keras tensor.
        filters: F, the output channels.
        kernel: the square kernel size (3 or 1), 'same' padding.
        name: prefix of the three layers' names.
        conv: the convolution layer class (keras.layers.Conv2D or `matmul_gradients.MatmulGradientConv2D`).

    Returns:
        (B, H, W, F) Keras tensor.
    """
    x = conv(filters, kernel, padding="same", use_bias=False, name=name + "_conv")(x)
    x = FusedBatchNormalization(momentum=BN_MOMENTUM, name=name + "_bn")(x)
    return keras.layers.Activation("relu", name=name + "_relu")(x)


def _classifier(x, inputs, dropout: float, name: str, conv=keras.layers.Conv2D):
    """Dropout, one logit per pixel, bilinear ×8 to the input's size, float32 sigmoid named `name`."""
    x = keras.layers.Dropout(dropout, name=name + "_dropout")(x)
    x = conv(1, 1, bias_initializer=prior_bias(), name=name + "_logits")(x)
    x = BilinearResizeLike(name=name + "_upsample")([x, inputs])
    return keras.layers.Activation("sigmoid", dtype="float32", name=name)(x)


def build_pspnet(
    input_channels: int,
    input_size: int | None = None,
    dropout: float = 0.1,
    aux: bool = False,
    encoder_width: float = 1.0,
    input_windows: list | None = None,
    weight_gradients: str = "native",
) -> keras.Model:
    """PSPNet with a dilated ResNet-50 encoder (random init).

    Args:
        input_channels: C, the number of input channels.
        input_size: H = W in pixels, divisible by 8; None for any such size.
        dropout: dropout rate before the classifier.
        aux: add the auxiliary stage-4 head as a second output "aux".
        encoder_width: scales the encoder's and the head's channels (1.0: the paper's ResNet-50).
        input_windows: C [low, high] pairs in normalised units: puts the fixed caffe-style input mapping
            before conv1, for an encoder that starts from ResNet-50 weights (islesbench/models/imagenet_inputs.py).
        weight_gradients: "native" or "matmul": how every convolution's weight gradients are computed
            (islesbench/models/matmul_gradients.py); the forward pass and the weights are the same.

    Returns:
        A keras.Model from float32 "image" (H, W, C) to float32 sigmoid "mask" (H, W, 1) probabilities,
        or {"mask", "aux"} (each (H, W, 1)) with `aux`.
    """
    inputs = keras.Input((input_size, input_size, input_channels), name="image")
    x = inputs
    if input_windows is not None:
        x = CaffeInputMapping(input_windows, name=LAYER_NAME)(inputs)
    conv = conv2d_class(weight_gradients)
    stages = resnet50_dilated(x, encoder_width, conv)
    ppm_channels, aux_channels = scaled(PPM_CHANNELS, encoder_width), scaled(AUX_CHANNELS, encoder_width)
    features = stages["conv5"]
    branches = [features]
    for bins in PPM_BINS:
        name = f"ppm_{bins}"
        y = AdaptiveAveragePooling2D(bins, name=name + "_pool")(features)
        y = conv_bn_relu(y, ppm_channels, 1, name, conv)
        branches.append(BilinearResizeLike(name=name + "_resize")([y, features]))
    x = keras.layers.Concatenate(name="ppm_concat")(branches)
    x = conv_bn_relu(x, ppm_channels, 3, "head", conv)
    mask = _classifier(x, inputs, dropout, "mask", conv)
    if not aux:
        return keras.Model(inputs, mask, name="pspnet")
    y = conv_bn_relu(stages["conv4"], aux_channels, 3, "aux_head", conv)
    aux_out = _classifier(y, inputs, 0.1, "aux", conv)
    return keras.Model(inputs, {"mask": mask, "aux": aux_out}, name="pspnet")
