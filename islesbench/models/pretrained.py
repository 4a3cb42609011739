"""Where PSPNet's encoder weights come from: ImageNet, a local ResNet-50 weights file, or a checkpoint.

`pretrained` (ModelConfig.pretrained, `--pretrained`) is one of
- None: random initialisation (from scratch);
- "imagenet": Keras' ResNet-50 ImageNet weights (no top), the file keras.applications caches at
  `$KERAS_HOME/models/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5` (KERAS_HOME defaults to
  ~/.keras). A cached file is used as is; otherwise one download is tried with a short socket timeout
  (skipped when ISLESBENCH_OFFLINE=1), and failing that an IslesbenchError says where to put the file;
- PATH to a ResNet-50 weights file in keras.applications' format — the legacy `.h5` ImageNet file or a
  `.weights.h5` written by `keras.applications.ResNet50(include_top=False, weights=None).save_weights(...)`
  (e.g. RadImageNet weights converted to Keras);
- PATH to an islesbench `.keras` checkpoint of a PSPNet: its encoder is transferred (pretrain on one
  cohort, fine-tune on another).

Weights are first loaded into a plain `keras.applications.ResNet50` (so both file formats load exactly as
Keras loads them), then copied layer by layer, by name, into the dilated encoder — dilation and stride do
not change kernel shapes. The first convolution is adapted to the input's channel count as timm's
`adapt_input_conv` does: the pretrained RGB kernel is tiled along the input-channel axis to C channels
(C = 1: summed) and scaled by 3/C, so a C-channel input of RGB-like statistics yields activations of the
same scale as the pretrained net saw. The CTP maps are not RGB; the adapted kernel is a starting point.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import socket
from pathlib import Path

import numpy as np

from islesbench.errors import IslesbenchError
from islesbench.models import pspnet, vnet  # noqa: F401  (registers their custom layers, which a checkpoint may hold)
from islesbench.models.resnet50_dilated import is_encoder_layer_name

# keras itself is imported inside the functions that use it, to keep `islesbench --help` fast.

IMAGENET_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + IMAGENET_FILE
IMAGENET_HASH = "4d473c1dd8becc155b73f8504c6f6626"  # keras.applications.resnet's md5 for the notop file
DOWNLOAD_TIMEOUT_S = 20.0
FIRST_CONV = "conv1_conv"


def keras_cache_dir() -> Path:
    """Where keras.applications caches files.

    Returns:
        `$KERAS_HOME` (read now, not at Keras' import) or ~/.keras, user-expanded.
    """
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()


def imagenet_weights_path() -> Path:
    """Where keras.applications keeps the ResNet-50 ImageNet (no-top) weights.

    Returns:
        `keras_cache_dir()`/models/`IMAGENET_FILE` (the file need not exist).
    """
    return keras_cache_dir() / "models" / IMAGENET_FILE


def adapt_input_conv(kernel: np.ndarray, channels: int) -> np.ndarray:
    """Adapt a conv kernel to another number of input channels: tile and rescale (timm's recipe).

    Args:
        kernel: (kh, kw, C_src, F) convolution kernel.
        channels: C, the input channels wanted.

    Returns:
        (kh, kw, C, F) kernel of `kernel`'s dtype: unchanged for C = C_src, summed over the input channels
        for C = 1, else tiled along them and scaled by C_src / C.
    """
    source = kernel.shape[2]
    if channels == source:
        return kernel
    if channels == 1:
        return kernel.sum(axis=2, keepdims=True)
    repeats = math.ceil(channels / source)
    tiled = np.tile(kernel, (1, 1, repeats, 1))[:, :, :channels, :]
    return (tiled * (source / channels)).astype(kernel.dtype)


def fetch_imagenet_weights() -> Path:
    """The ResNet-50 ImageNet weights file, downloaded once per process if it is not cached.

    Returns:
        The cached file's path; an IslesbenchError saying where to put the file when it is not cached and
        cannot be downloaded (ISLESBENCH_OFFLINE set, no network, a hash mismatch).
    """
    path = imagenet_weights_path()
    if path.is_file():
        return path
    advice = (
        f"ResNet-50 ImageNet weights are not cached at {path} and could not be downloaded{{why}}. "
        f"Copy {IMAGENET_FILE} (from {IMAGENET_URL}) to {path.parent}/ (or set KERAS_HOME to the "
        "folder holding models/), or use --pretrained PATH with a local ResNet-50 weights file "
        "(.h5 / .weights.h5) or an islesbench .keras checkpoint; --pretrained none trains from scratch."
    )
    if os.environ.get("ISLESBENCH_OFFLINE"):
        raise IslesbenchError(advice.format(why=" (ISLESBENCH_OFFLINE is set)"))
    if path in _download_failures:  # tried once in this process (a grid asks per cell): no retry, no repeat
        raise IslesbenchError(advice.format(why=_download_failures[path]))
    import keras

    # One line of ours instead of Keras' own "Downloading data from" (which a retry would repeat).
    print(f"downloading ResNet-50 ImageNet weights (94 MB) from {IMAGENET_URL} to {path.parent}/", flush=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # no hang on a machine without network
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            fetched = keras.utils.get_file(
                IMAGENET_FILE, IMAGENET_URL, cache_subdir="models", file_hash=IMAGENET_HASH,
                cache_dir=str(keras_cache_dir()),
            )
    except Exception as exc:  # URLError, timeout, hash mismatch, … all mean: not available
        _download_failures[path] = f" ({type(exc).__name__}: {exc})"
        raise IslesbenchError(advice.format(why=_download_failures[path])) from None
    finally:
        socket.setdefaulttimeout(previous)
    return Path(fetched)


_download_failures: dict = {}  # target path -> why this process's one download attempt failed


def read_resnet50_weights(path) -> dict:
    """The weights of a ResNet-50 (no top) weights file in keras.applications' format.

    Args:
        path: a legacy `.h5` ImageNet file or a `.weights.h5` file.

    Returns:
        {layer name: [arrays]} of every weighted layer (keras.applications.ResNet50's names); an
        IslesbenchError when the file is not such weights.
    """
    import keras

    path = Path(path)
    donor = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(None, None, 3))
    try:
        donor.load_weights(str(path))
    except Exception as exc:
        raise IslesbenchError(
            f"{path} is not a ResNet-50 (no top) weights file in keras.applications' format "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    return {layer.name: layer.get_weights() for layer in donor.layers if layer.weights}


def checkpoint_encoder_weights(path) -> dict:
    """The encoder weights of an islesbench checkpoint.

    Args:
        path: an islesbench `.keras` checkpoint (PSPNet, or the self-supervised restoration model).

    Returns:
        {layer name: [arrays]} of its weighted ResNet-50 encoder layers; an IslesbenchError when the file
        cannot be read or has no encoder.
    """
    import keras

    path = Path(path)
    try:
        source = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:
        raise IslesbenchError(
            f"cannot read islesbench checkpoint {path} ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from None
    weights = {
        layer.name: layer.get_weights()
        for layer in source.layers
        if is_encoder_layer_name(layer.name) and layer.weights
    }
    if not weights:
        raise IslesbenchError(f"checkpoint {path} ({source.name}) has no ResNet-50 encoder to transfer")
    return weights


def source_weights(pretrained: str) -> dict:
    """The encoder weights a `--pretrained` value names.

    Args:
        pretrained: "imagenet", or the PATH of a ResNet-50 `.h5` / `.weights.h5` file or an islesbench
            `.keras` checkpoint.

    Returns:
        {layer name: [arrays]}; an IslesbenchError for a missing file or an unknown format.
    """
    if pretrained == "imagenet":
        return read_resnet50_weights(fetch_imagenet_weights())
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise IslesbenchError(
            f"--pretrained {pretrained}: no such file (expected 'imagenet', a ResNet-50 .h5 / .weights.h5 "
            "file, or an islesbench .keras checkpoint)"
        )
    if path.suffix == ".keras":
        return checkpoint_encoder_weights(path)
    if path.suffix in (".h5", ".hdf5"):
        return read_resnet50_weights(path)
    raise IslesbenchError(
        f"--pretrained {pretrained}: unknown weights format {path.suffix!r}; use .h5, .weights.h5 or .keras"
    )


def load_encoder_weights(model, pretrained: str) -> list:
    """Copy the encoder weights a `--pretrained` value names into a model's encoder.

    Args:
        model: a keras.Model with the dilated ResNet-50 encoder (PSPNet); conv1's kernel is adapted to its
            input channels (`adapt_input_conv`).
        pretrained: "imagenet" or a PATH (`source_weights`).

    Returns:
        The names of the layers set, in model order; an IslesbenchError for a missing layer or a shape
        mismatch (e.g. an encoder width other than the weights').
    """
    weights = source_weights(pretrained)
    loaded = []
    for layer in model.layers:
        if not (is_encoder_layer_name(layer.name) and layer.weights):
            continue
        if layer.name not in weights:
            raise IslesbenchError(f"--pretrained {pretrained}: no weights for encoder layer {layer.name}")
        arrays = list(weights[layer.name])
        if layer.name == FIRST_CONV:
            arrays[0] = adapt_input_conv(arrays[0], layer.kernel.shape[2])
        expected = [tuple(w.shape) for w in layer.weights]
        if [tuple(a.shape) for a in arrays] != expected:
            raise IslesbenchError(
                f"--pretrained {pretrained}: layer {layer.name} has shapes "
                f"{[tuple(a.shape) for a in arrays]}, the encoder expects {expected}"
            )
        layer.set_weights(arrays)
        loaded.append(layer.name)
    return loaded


def check_available(pretrained: str) -> None:
    """Fail at once, before any data work, when the named weights cannot be had.

    Args:
        pretrained: "imagenet" or a PATH.

    Returns:
        None; an IslesbenchError when the ImageNet file cannot be fetched or the PATH is not a file.
    """
    if pretrained == "imagenet":
        fetch_imagenet_weights()
        return
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise IslesbenchError(
            f"--pretrained {pretrained}: no such file (expected 'imagenet', a ResNet-50 .h5 / .weights.h5 "
            "file, or an islesbench .keras checkpoint)")
