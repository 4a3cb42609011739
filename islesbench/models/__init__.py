"""The model registry: `build_model(name, input_channels=…, **ModelConfig fields)` for pspnet, unet, vnet.

`MODELS` is the one table of models: name -> `ModelSpec` (its builder, 2-D or 3-D, the ModelConfig fields
it uses, what its input size must be a multiple of, whether it takes pretrained encoder weights). The user
vocabulary `islesbench.config.ARCHS` is these names plus the "threshold" baseline.

Every model takes channels-last float32 input named "image" — (H, W, C) slices for the 2-D models,
(D, H, W, C) slabs for V-Net — and returns float32 sigmoid probabilities of shape (…, 1) from a layer named
"mask" (mixed precision included). PSPNet with `aux_weight > 0` returns {"mask", "aux"}; see
`islesbench.models.pspnet` for how the trainer weights the aux loss and `without_aux` for prediction.

Encoder freezing (`--freeze-encoder-epochs K`): for the first K epochs the trainer sets
`set_encoder_trainable(model, False)` and compiles; then `set_encoder_trainable(model, True)` and compiles
again (Keras 3 fixes the trainable variables when the train function is built, so re-compiling is required;
the optimizer state of the head is lost with it, which a warm-up tolerates). Frozen BatchNormalization
layers run in inference mode, so the pretrained statistics are kept, as intended.

May import: the core, islesbench.runtime, islesbench.imaging. TensorFlow and Keras are imported inside
functions here (the builders' modules import Keras at their top), so that `islesbench --help` stays fast.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from islesbench.config import ModelConfig, pretrained_source, resnet50_weights
from islesbench.errors import IslesbenchError

# Keras (and every module that builds a layer) is imported inside the functions, to keep `islesbench --help` fast.


def _build_pspnet(input_channels: int, input_size: int | None, modalities, options: dict):
    import keras

    from islesbench.models.imagenet_inputs import channel_windows
    from islesbench.models.matmul_gradients import resolve as resolve_weight_gradients
    from islesbench.models.pretrained import load_encoder_weights
    from islesbench.models.pspnet import build_pspnet

    pretrained = options.pop("pretrained", None)
    aux_weight = float(options.pop("aux_weight", 0.0))
    windows = None
    # ResNet-50 weights (ImageNet, a .h5 file) expect caffe-style inputs; a .keras checkpoint learnt on normalised maps.
    if pretrained_source(pretrained) and resnet50_weights(pretrained):
        windows = channel_windows(modalities, input_channels)
    # "auto" resolves against the policy the model is being built under (cross_validation stores the same).
    options["weight_gradients"] = resolve_weight_gradients(options.get("weight_gradients", "native"),
                                                           keras.config.dtype_policy().name,
                                                           options.get("encoder_width", 1.0))
    model = build_pspnet(input_channels, input_size, aux=aux_weight > 0, input_windows=windows, **options)
    if pretrained_source(pretrained):
        load_encoder_weights(model, str(pretrained))
    return model


def _build_unet(input_channels: int, input_size: int | None, modalities, options: dict):
    from islesbench.models.unet import build_unet

    return build_unet(input_channels, input_size, **options)


def _build_vnet(input_channels: int, input_size: int | None, modalities, options: dict):
    from islesbench.models.vnet import build_vnet

    return build_vnet(input_channels, input_size, **options)


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: how it is built and everything callers decide by its name.

    Attributes:
        builder: (input_channels, input_size, modalities, options) -> keras.Model, `options` holding only
            the fields in `options` that are not None.
        is_3d: takes (D, H, W, C) slabs instead of (H, W, C) slices.
        options: the ModelConfig fields the model uses (the others are ignored).
        size_multiple: a fixed `input_size` must be a multiple of this, in pixels; None: of 2**depth.
        pretrained: takes encoder weights (`--pretrained`).
    """

    builder: Callable
    is_3d: bool
    options: tuple
    size_multiple: int | None = None
    pretrained: bool = False


# The registry: every learned model (config.ARCHS adds the "threshold" baseline, which has no network).
MODELS = {
    "pspnet": ModelSpec(_build_pspnet, is_3d=False, options=("pretrained", "dropout", "aux_weight", "encoder_width",
                                                              "weight_gradients"),
                        size_multiple=8, pretrained=True),
    "unet": ModelSpec(_build_unet, is_3d=False, options=("base_width", "depth", "dropout")),
    "vnet": ModelSpec(_build_vnet, is_3d=True, options=("base_width", "depth", "dropout", "anisotropic")),
}
MODEL_NAMES = tuple(MODELS)
_MODEL_CONFIG_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)} - {"arch"}


def model_spec(name: str) -> ModelSpec:
    """The registry entry of a model.

    Args:
        name: one of `MODEL_NAMES`.

    Returns:
        Its `ModelSpec`; an IslesbenchError naming the choices for an unknown name.
    """
    if name not in MODELS:
        raise IslesbenchError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return MODELS[name]


def build_model(name: str, *, input_channels: int, input_size: int | None = None, modalities=None, **kwargs):
    """The named model, built from ModelConfig fields; the fields it does not use are ignored.

    `pretrained` (models with `ModelSpec.pretrained` only) loads encoder weights: None, "imagenet" or a
    PATH (see islesbench.models.pretrained); ResNet-50 weights (imagenet, a .h5 file) also get the
    caffe-style input mapping (islesbench.models.imagenet_inputs), from the channels' windows.

    Args:
        name: one of `MODEL_NAMES`.
        input_channels: C, the number of input channels (>= 1).
        input_size: H = W of the input in pixels, a multiple of 8 (PSPNet) or 2**depth (U-Net, V-Net);
            None builds a model for any such size.
        modalities: the input channels' names (DataConfig.modalities), for the input mapping's windows;
            unnamed channels take the default window.
        **kwargs: ModelConfig fields (``arch`` excluded).

    Returns:
        A keras.Model from float32 "image" (H, W, C) slices ((D, H, W, C) slabs for 3-D models) to float32
        sigmoid probabilities (…, 1) named "mask" ({"mask", "aux"} for PSPNet with aux_weight > 0).
    """
    spec = model_spec(name)
    unknown = set(kwargs) - _MODEL_CONFIG_FIELDS
    if unknown:
        raise IslesbenchError(
            f"unknown model option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_MODEL_CONFIG_FIELDS))}"
        )
    if input_channels < 1:
        raise IslesbenchError(f"input_channels must be >= 1, not {input_channels}")
    multiple = spec.size_multiple or 2 ** int(kwargs.get("depth", 4))
    if input_size is not None and input_size % multiple:
        raise IslesbenchError(f"{name}: input_size must be divisible by {multiple}, not {input_size}")
    options = {k: v for k, v in kwargs.items() if k in spec.options and v is not None}
    if kwargs.get("pretrained") and not spec.pretrained:
        takers = " and ".join(n for n, s in MODELS.items() if s.pretrained)
        raise IslesbenchError(f"--pretrained applies to {takers} only (model is {name})")
    return spec.builder(input_channels, input_size, modalities, options)


def build_from_config(model_config, input_channels: int, input_size: int | None = None, modalities=None):
    """The model a ModelConfig describes: every field reaches `build_model` (each model takes what it uses).

    Args:
        model_config: a ModelConfig (``arch`` names the model).
        input_channels: C, the number of input channels.
        input_size: H = W in pixels, or None for any valid size.
        modalities: the input channels' names (DataConfig.modalities).

    Returns:
        The keras.Model `build_model` returns.
    """
    options = {k: v for k, v in dataclasses.asdict(model_config).items() if k != "arch"}
    return build_model(model_config.arch, input_channels=input_channels, input_size=input_size,
                       modalities=modalities, **options)


def is_3d(name: str) -> bool:
    """Whether a model works on slabs.

    Args:
        name: one of `MODEL_NAMES`.

    Returns:
        True for models that take (D, H, W, C) slabs, False for (H, W, C) slices; an IslesbenchError
        for an unknown name.
    """
    return model_spec(name).is_3d


def encoder_layers(model) -> list:
    """The layers of the (pretrainable) ResNet-50 encoder.

    Args:
        model: a keras.Model of this registry (or the restoration model of islesbench.models.restoration).

    Returns:
        Its encoder's layers in model order; [] for U-Net and V-Net.
    """
    from islesbench.models.resnet50_dilated import is_encoder_layer_name

    return [layer for layer in model.layers if is_encoder_layer_name(layer.name)]


def set_encoder_trainable(model, trainable: bool) -> int:
    """Freeze or unfreeze the encoder; re-compile the model afterwards.

    Args:
        model: a keras.Model of this registry.
        trainable: False freezes (frozen BatchNormalization runs in inference mode), True unfreezes.

    Returns:
        The number of layers changed (0 for a model without an encoder).
    """
    layers = encoder_layers(model)
    for layer in layers:
        layer.trainable = trainable
    return len(layers)


def without_aux(model):
    """The model with only its "mask" output, for prediction and export.

    Args:
        model: a keras.Model of this registry, with or without PSPNet's "aux" output.

    Returns:
        A keras.Model sharing the layers and weights, whose one output is the (…, 1) "mask" probabilities;
        `model` itself when it has one output.
    """
    import keras

    if not isinstance(model.output, dict):
        return model
    return keras.Model(model.input, model.get_layer("mask").output, name=model.name)
