"""V-Net (Milletari et al., 2016), 3-D, with explicit handling of thin, thick-sliced ISLES slabs.

Milletari's design: residual stages of 5×5×5 convolutions with PReLU (1, 2, 3, 3, … convolutions per
stage), strided-convolution down-sampling (×2, doubling the width) and transposed-convolution up-sampling,
skip connections by concatenation. We add batch norm after each convolution (the original has none; it
makes small-batch training stable) and dropout at the bottleneck. The convolutions are Keras' own with one
change in bfloat16/float16: their kernel gradients go through the 2-D kernel, slice by slice
(`islesbench.models.conv3d`: oneDNN's AMX 3-D kernel-gradient kernel overflows its buffer at 256²).

Why the z axis needs care: an ISLES 2018 slab has 2–22 slices 4–12 mm thick, against ~0.9 mm in-plane. The
paper's 3-D nets, which treat z like x and y, down-sample a 2-slice slab to nothing and mix slices ~5–10 voxel
widths apart with 5-tap kernels. Input (D, H, W, C), D any depth ≥ 1; `depth` 2× down-samplings in-plane
(H, W divisible by 2**depth); level l has `base_width · 2**l` filters.

- `anisotropic=True` (default): z is never down-sampled (strides (1, 2, 2)); kernels are (1, 5, 5) at full
  resolution, where one slice is 5–10 in-plane voxels thick, and (3, 5, 5) from level 1 on, where the
  in-plane voxels have grown towards the slice thickness. Every slab depth works without padding.
- `anisotropic=False` (Milletari's isotropic net, for the comparison): 5×5×5 kernels and 2×2×2 strides; the
  slab is zero-padded in depth to a multiple of 2**depth inside the model (`DepthPad`) and the output cropped
  back (`DepthCrop`), so the output has the input's depth either way.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from islesbench.models.batch_norm import FusedBatchNormalization
from islesbench.models.conv3d import Conv3DSliceGrad, Conv3DTransposeSliceGrad
from islesbench.models.initialization import prior_bias
from islesbench.models.resnet50_dilated import BN_MOMENTUM


@keras.saving.register_keras_serializable(package="islesbench")
class DepthPad(keras.layers.Layer):
    """Zero-pad axis 1 (depth) of (B, D, H, W, C) at the end up to a multiple of `multiple`.

    Args:
        multiple: the depth the output is padded to a multiple of, in slices.
        **kwargs: keras.layers.Layer arguments (name, dtype).

    Call: `layer(x)` with x (B, D, H, W, C); returns (B, ⌈D / multiple⌉ · multiple, H, W, C).
    """

    def __init__(self, multiple: int, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, x):
        # Append multiple-1 zero slices (a static count), then cut to the next multiple of `multiple`.
        # Not keras.ops.pad: its widths must be static, and TF's oneDNN Pad+Conv3D fusion then turns the
        # following 'same' convolution into a 'valid' one (wrong output shape; seen with TF 2.21).
        shape = ops.shape(x)
        padded = (shape[1] + self.multiple - 1) // self.multiple * self.multiple
        zeros = ops.repeat(ops.zeros_like(x[:, :1]), self.multiple - 1, axis=1)
        x = ops.concatenate([x, zeros], axis=1)
        size = ops.stack([shape[0], padded, shape[2], shape[3], shape[4]])
        return ops.slice(x, ops.zeros((5,), "int32"), size)

    def compute_output_shape(self, input_shape):
        d = input_shape[1]
        padded = None if d is None else -(-d // self.multiple) * self.multiple
        return (input_shape[0], padded, *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="islesbench")
class DepthCrop(keras.layers.Layer):
    """Crop axis 1 (depth) of `x` to the depth of `reference`.

    Call: `layer([x, reference])` with x (B, D', H, W, C) and reference (B, D, …), D <= D'; returns
    (B, D, H, W, C).
    """

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(x)
        size = ops.stack([shape[0], ops.shape(reference)[1], shape[2], shape[3], shape[4]])
        return ops.slice(x, ops.zeros((5,), "int32"), size)

    def compute_output_shape(self, input_shapes):
        x_shape, ref_shape = input_shapes
        return (x_shape[0], ref_shape[1], *x_shape[2:])


def _conv_bn(x, filters: int, kernel, name: str, strides=1):
    x = Conv3DSliceGrad(filters, kernel, strides=strides, padding="same", use_bias=False, name=name + "_conv")(x)
    return FusedBatchNormalization(momentum=BN_MOMENTUM, name=name + "_bn")(x)


def _prelu(x, name: str):
    # One slope per channel, shared over (D, H, W) so that any slab size works.
    return keras.layers.PReLU(shared_axes=[1, 2, 3], name=name)(x)


def _residual_stage(x, residual, filters: int, n_convs: int, kernel, name: str):
    """n_convs × (conv, BN, PReLU) with `residual` added before the last PReLU."""
    for i in range(1, n_convs + 1):
        x = _conv_bn(x, filters, kernel, f"{name}_{i}")
        if i < n_convs:
            x = _prelu(x, f"{name}_{i}_prelu")
    x = keras.layers.Add(name=f"{name}_add")([x, residual])
    return _prelu(x, f"{name}_out")


def build_vnet(
    input_channels: int,
    input_size: int | None = None,
    base_width: int = 16,
    depth: int = 4,
    dropout: float = 0.1,
    anisotropic: bool = True,
) -> keras.Model:
    """V-Net on slabs (see the module docstring for the anisotropic design).

    Args:
        input_channels: C, the number of input channels.
        input_size: H = W in pixels, divisible by 2**depth; None for any such size.
        base_width: filters of the first level (level l has base_width · 2**l).
        depth: the number of 2× down-samplings (in-plane only when `anisotropic`).
        dropout: dropout rate at the bottleneck.
        anisotropic: never down-sample z, (1, 5, 5) then (3, 5, 5) kernels; False: Milletari's 5×5×5
            kernels and 2×2×2 strides, the slab padded in depth inside the model.

    Returns:
        A keras.Model from float32 "image" (D, H, W, C) slabs, D any ≥ 1, to float32 sigmoid "mask"
        (D, H, W, 1) probabilities.
    """
    z_stride = 1 if anisotropic else 2

    def kernel(level):
        if not anisotropic:
            return (5, 5, 5)
        return (1, 5, 5) if level == 0 else (3, 5, 5)

    inputs = keras.Input((None, input_size, input_size, input_channels), name="image")
    x = inputs
    if z_stride > 1:
        x = DepthPad(z_stride**depth, name="vnet_depth_pad")(x)
    residual = Conv3DSliceGrad(base_width, 1, name="vnet_input_proj")(x)
    skips = []
    for level in range(depth):
        name = f"vnet_down{level}"
        x = _residual_stage(x, residual, base_width * 2**level, min(level + 1, 3), kernel(level), name)
        skips.append(x)
        stride = (z_stride, 2, 2)
        x = _conv_bn(x, base_width * 2 ** (level + 1), stride, f"{name}_downconv", strides=stride)
        x = residual = _prelu(x, f"{name}_downconv_prelu")
    x = _residual_stage(x, residual, base_width * 2**depth, 3, kernel(depth), "vnet_bottleneck")
    x = keras.layers.Dropout(dropout, name="vnet_bottleneck_dropout")(x)
    for level in reversed(range(depth)):
        name = f"vnet_up{level}"
        stride = (z_stride, 2, 2)
        up = Conv3DTransposeSliceGrad(
            base_width * 2**level, stride, strides=stride, use_bias=False, name=f"{name}_upconv"
        )(x)
        up = FusedBatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_upconv_bn")(up)
        up = _prelu(up, f"{name}_upconv_prelu")
        x = keras.layers.Concatenate(name=f"{name}_concat")([up, skips[level]])
        x = _residual_stage(x, up, base_width * 2**level, min(level + 1, 3), kernel(level), name)
    x = Conv3DSliceGrad(1, 1, bias_initializer=prior_bias(), name="vnet_logits")(x)
    if z_stride > 1:
        x = DepthCrop(name="vnet_depth_crop")([x, inputs])
    mask = keras.layers.Activation("sigmoid", dtype="float32", name="mask")(x)
    return keras.Model(inputs, mask, name="vnet" if anisotropic else "vnet_isotropic")


def depth_multiple(depth: int, anisotropic: bool) -> int:
    """The multiple the slab depth is padded to inside the network.

    Args:
        depth: the V-Net's number of down-samplings.
        anisotropic: the V-Net's `anisotropic`.

    Returns:
        The multiple in slices: 1 when anisotropic (no padding), else 2**depth.
    """
    return 1 if anisotropic else int(math.pow(2, depth))
