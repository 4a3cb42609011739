"""The model registry: `build_model(name, input_channels=…, **ModelConfig fields)` for pspnet, unet, vnet.

Every model takes channels-last float32 input named "image" — (H, W, C) slices for the 2-D models,
(D, H, W, C) slabs for V-Net — and returns float32 sigmoid probabilities of shape (…, 1) from a layer named
"mask" (mixed precision included). PSPNet with `aux_weight > 0` returns {"mask", "aux"}; see
`islesbench.models.pspnet` for how the trainer weights the aux loss and `without_aux` for prediction.

Encoder freezing (`--freeze-encoder-epochs K`): for the first K epochs the trainer sets
`set_encoder_trainable(model, False)` and compiles; then `set_encoder_trainable(model, True)` and compiles
again (Keras 3 fixes the trainable variables when the train function is built, so re-compiling is required;
the optimizer state of the head is lost with it, which a warm-up tolerates). Frozen BatchNormalization
layers run in inference mode, so the pretrained statistics are kept, as intended.
"""

from __future__ import annotations

import dataclasses

from islesbench.errors import IslesbenchError

MODEL_NAMES = ("pspnet", "unet", "vnet")
_3D = ("vnet",)
_USED = {
    "pspnet": ("pretrained", "dropout", "aux_weight", "encoder_width"),
    "unet": ("base_width", "depth", "dropout"),
    "vnet": ("base_width", "depth", "dropout", "anisotropic"),
}


def _model_config_fields() -> set:
    from islesbench.config import ModelConfig

    return {f.name for f in dataclasses.fields(ModelConfig)} - {"arch"}


def build_model(name: str, *, input_channels: int, input_size: int | None = None, modalities=None, **kwargs):
    """The named model (one of MODEL_NAMES), built from ModelConfig fields; unused fields are ignored.

    input_size None builds a model for any in-plane size divisible by 8 (PSPNet) or 2**depth (U-Net,
    V-Net). `pretrained` (PSPNet only) loads encoder weights: None, "imagenet" or a PATH (see
    islesbench.models.pretrained); ResNet-50 weights (imagenet, a .h5 file) also get the caffe-style input
    mapping (islesbench.models.imagenet_inputs), from the channels' windows (`modalities`, the input
    channels' names; unnamed channels take the default window).
    """
    if name not in MODEL_NAMES:
        raise IslesbenchError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    unknown = set(kwargs) - _model_config_fields()
    if unknown:
        raise IslesbenchError(
            f"unknown model option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_model_config_fields()))}"
        )
    if input_channels < 1:
        raise IslesbenchError(f"input_channels must be >= 1, not {input_channels}")
    multiple = 8 if name == "pspnet" else 2 ** int(kwargs.get("depth", 4))
    if input_size is not None and input_size % multiple:
        raise IslesbenchError(f"{name}: input_size must be divisible by {multiple}, not {input_size}")
    options = {k: v for k, v in kwargs.items() if k in _USED[name] and v is not None}
    if name == "pspnet":
        from islesbench.models.pspnet import build_pspnet

        from islesbench.config import pretrained_source

        from islesbench.models.pretrained import is_resnet50_weights

        pretrained = options.pop("pretrained", None)
        aux_weight = float(options.pop("aux_weight", 0.0))
        windows = None
        if pretrained_source(pretrained) and is_resnet50_weights(pretrained):
            from islesbench.models.imagenet_inputs import channel_windows

            windows = channel_windows(modalities, input_channels)
        model = build_pspnet(input_channels, input_size, aux=aux_weight > 0, input_windows=windows, **options)
        if pretrained_source(pretrained):
            from islesbench.models.pretrained import load_encoder_weights

            load_encoder_weights(model, str(pretrained))
        return model
    if kwargs.get("pretrained"):
        raise IslesbenchError(f"--pretrained applies to pspnet only (model is {name})")
    if name == "unet":
        from islesbench.models.unet import build_unet

        return build_unet(input_channels, input_size, **options)
    from islesbench.models.vnet import build_vnet

    return build_vnet(input_channels, input_size, **options)


def build_from_config(model_config, input_channels: int, input_size: int | None = None, modalities=None):
    """The model a ModelConfig describes: every field reaches `build_model` (each model takes what it uses);
    `modalities` names the input channels (DataConfig.modalities)."""
    options = {k: v for k, v in dataclasses.asdict(model_config).items() if k != "arch"}
    return build_model(model_config.arch, input_channels=input_channels, input_size=input_size,
                       modalities=modalities, **options)


def is_3d(name: str) -> bool:
    """True for models that take (D, H, W, C) slabs instead of (H, W, C) slices."""
    if name not in MODEL_NAMES:
        raise IslesbenchError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return name in _3D


def encoder_layers(model) -> list:
    """The layers of the (pretrainable) ResNet-50 encoder, in model order; [] for U-Net and V-Net."""
    from islesbench.models.resnet50_dilated import is_encoder_layer_name

    return [layer for layer in model.layers if is_encoder_layer_name(layer.name)]


def set_encoder_trainable(model, trainable: bool) -> int:
    """Freeze or unfreeze the encoder (re-compile afterwards); returns the number of layers changed."""
    layers = encoder_layers(model)
    for layer in layers:
        layer.trainable = trainable
    return len(layers)


def without_aux(model):
    """The model with only its "mask" output (the same layers and weights), for prediction and export."""
    import keras

    if not isinstance(model.output, dict):
        return model
    return keras.Model(model.input, model.get_layer("mask").output, name=model.name)
