"""Pretrained encoder weights: local ResNet-50 files, the cached ImageNet file, checkpoints, offline failure.

No test touches the network: the tests write their own (randomly initialised) ResNet-50 weights files and
point KERAS_HOME at temporary folders.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from islesbench.errors import IslesbenchError  # noqa: E402
from islesbench.models import build_model, encoder_layers  # noqa: E402
from islesbench.models import pretrained as pretrained_mod  # noqa: E402
from islesbench.models.pretrained import IMAGENET_FILE, adapt_input_conv  # noqa: E402


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A ResNet-50 (no top) with seeded random weights, saved as keras.applications would: (model, path)."""
    keras.utils.set_random_seed(123)
    donor = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(None, None, 3))
    # Make BN statistics non-trivial too, so that a copied moving mean is distinguishable from a fresh one.
    for layer in donor.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.random.default_rng(0).normal(size=layer.moving_mean.shape))
    path = tmp_path_factory.mktemp("weights") / "resnet50.weights.h5"
    donor.save_weights(path)
    return donor, path


def _assert_encoder_equals(model, donor, channels):
    checked = 0
    for layer in donor.layers:
        if not layer.weights:
            continue
        expected = layer.get_weights()
        if layer.name == "conv1_conv":
            expected[0] = adapt_input_conv(expected[0], channels)
        for got, want in zip(model.get_layer(layer.name).get_weights(), expected):
            np.testing.assert_array_equal(got, want, err_msg=layer.name)
        checked += 1
    assert checked == 106


def test_adapt_input_conv_tiles_and_rescales():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(7, 7, 3, 4)).astype("float32")
    five = adapt_input_conv(kernel, 5)
    assert five.shape == (7, 7, 5, 4)
    np.testing.assert_allclose(five[:, :, :3], kernel * 3 / 5, rtol=1e-6)
    np.testing.assert_allclose(five[:, :, 3:], kernel[:, :, :2] * 3 / 5, rtol=1e-6)
    np.testing.assert_allclose(adapt_input_conv(kernel, 1), kernel.sum(axis=2, keepdims=True), rtol=1e-6)
    assert adapt_input_conv(kernel, 3) is kernel
    # the rescaling keeps the total kernel weight for C = 3k (here 6): same response to a constant input
    np.testing.assert_allclose(adapt_input_conv(kernel, 6).sum(axis=2), kernel.sum(axis=2), rtol=1e-5)


@pytest.mark.parametrize("channels", [5, 3])
def test_local_weights_file_arrives_in_the_encoder(resnet_file, channels):
    donor, path = resnet_file
    keras.utils.set_random_seed(7)
    model = build_model("pspnet", input_channels=channels, pretrained=str(path))
    _assert_encoder_equals(model, donor, channels)


def test_cached_imagenet_file_is_used_without_network(resnet_file, tmp_path, monkeypatch):
    donor, _ = resnet_file
    cache = tmp_path / "keras_home" / "models"
    cache.mkdir(parents=True)
    donor.save(cache / IMAGENET_FILE)  # legacy HDF5, the format of Keras' ImageNet file
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("ISLESBENCH_OFFLINE", "1")
    model = build_model("pspnet", input_channels=4, pretrained="imagenet")
    _assert_encoder_equals(model, donor, 4)


def test_checkpoint_encoder_is_transferred_and_head_is_not(tmp_path):
    keras.utils.set_random_seed(11)
    source = build_model("pspnet", input_channels=5)
    path = tmp_path / "fold_0.keras"
    source.save(path)
    keras.utils.set_random_seed(12)
    target = build_model("pspnet", input_channels=5, pretrained=str(path))
    for layer in encoder_layers(source):
        for got, want in zip(target.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(got, want, err_msg=layer.name)
    head_src, head_dst = source.get_layer("head_conv").get_weights()[0], target.get_layer("head_conv").get_weights()[0]
    assert not np.array_equal(head_src, head_dst)


def test_checkpoint_without_encoder_is_rejected(tmp_path):
    path = tmp_path / "unet.keras"
    build_model("unet", input_channels=5, base_width=4, depth=2).save(path)
    with pytest.raises(IslesbenchError, match="no ResNet-50 encoder"):
        build_model("pspnet", input_channels=5, pretrained=str(path))


def test_imagenet_offline_fails_at_once_with_advice(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("ISLESBENCH_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(IslesbenchError) as info:
        build_model("pspnet", input_channels=5, pretrained="imagenet")
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert str(tmp_path / "empty" / "models" / IMAGENET_FILE) in message
    assert "--pretrained PATH" in message and IMAGENET_FILE in message


def test_imagenet_download_failure_becomes_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("ISLESBENCH_OFFLINE", raising=False)

    def no_network(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    with pytest.raises(IslesbenchError, match="could not be downloaded.*name resolution") as info:
        pretrained_mod.fetch_imagenet_weights()
    assert info.value.__suppress_context__  # raised `from None`: the CLI prints one line, no chained traceback


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("missing.h5", None, "no such file"),
        ("weights.npz", b"x", "unknown weights format"),
        ("garbage.h5", b"not hdf5", "not a ResNet-50"),
        ("garbage.keras", b"not a zip", "cannot read islesbench checkpoint"),
    ],
)
def test_bad_pretrained_paths_are_clear_errors(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(IslesbenchError, match=match):
        pretrained_mod.source_weights(str(path))
