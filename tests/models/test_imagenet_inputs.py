"""The caffe-style input mapping for ResNet-50 weights: its arithmetic, when it is built, and that a frozen
pretrained encoder sees varied features through it (and near-constant ones without it).

The ResNet-50 weights file is written by the test (random weights, with conv1's BatchNormalization
statistics calibrated on caffe-preprocessed 8-bit images, as ImageNet training leaves them); no network.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from islesbench.config import DEFAULT_MODALITIES  # noqa: E402
from islesbench.imaging.preprocessing import normalized_range  # noqa: E402
from islesbench.models import build_model  # noqa: E402
from islesbench.models.imagenet_inputs import IMAGENET_BGR_MEAN, LAYER_NAME, channel_windows  # noqa: E402
from islesbench.models.pretrained import load_encoder_weights  # noqa: E402
from islesbench.models.pspnet import build_pspnet  # noqa: E402


def _caffe_images(rng, n=8, size=64):
    """Smooth random 8-bit RGB images, caffe-preprocessed as keras.applications.resnet50 does."""
    from scipy import ndimage

    rgb = ndimage.uniform_filter(rng.uniform(0, 255, (n, size, size, 3)), size=(1, 9, 9, 1))
    rgb = (rgb - rgb.mean()) * 4 + 128
    return keras.applications.resnet50.preprocess_input(np.clip(rgb, 0, 255).astype("float32"))


@pytest.fixture(scope="module")
def calibrated_resnet_file(tmp_path_factory):
    """A random ResNet-50 whose conv1 BN statistics are those of caffe-scale inputs, saved with save_weights."""
    keras.utils.set_random_seed(5)
    donor = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(None, None, 3))
    conv1 = keras.Model(donor.input, donor.get_layer("conv1_conv").output)
    responses = np.asarray(conv1(_caffe_images(np.random.default_rng(0))))
    bn = donor.get_layer("conv1_bn")
    bn.moving_mean.assign(responses.mean(axis=(0, 1, 2)))
    bn.moving_variance.assign(responses.var(axis=(0, 1, 2)))
    path = tmp_path_factory.mktemp("weights") / "resnet50.weights.h5"
    donor.save_weights(path)
    return path


def _normalised_maps(rng, n=4, size=64):
    """Maps of the statistics islesbench's normalisation gives (order 1): rCBF/rCBV ~1, MTT/Tmax s/10, CT."""
    from scipy import ndimage

    centre = np.array([1.0, 1.0, 0.45, 0.2, 0.0])
    spread = np.array([0.4, 0.4, 0.15, 0.15, 0.3])
    noise = ndimage.uniform_filter(rng.normal(size=(n, size, size, 5)), size=(1, 5, 5, 1)) * 3
    return (centre + spread * noise).astype("float32")


def test_mapping_is_caffe_preprocessing_of_the_windowed_maps():
    rng = np.random.default_rng(1)
    modalities = ("CT_CBF", "CT_MTT", "CT")
    windows = channel_windows(modalities, 3)
    assert windows == [list(normalized_range(m)) for m in modalities]
    model = build_pspnet(3, 32, encoder_width=0.125, input_windows=windows)
    mapping = model.get_layer(LAYER_NAME)
    x = rng.uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    x = x * np.array([5.0, 4.0, 3.5]) + np.array([0.0, 0.0, -1.5])
    pixels = np.stack([(x[..., c] - lo) / (hi - lo) * 255 for c, (lo, hi) in enumerate(windows)], axis=-1)
    # our channel c is fed to kernel channel c mod 3 = B, G, R: caffe of the image whose RGB is reversed
    expected = keras.applications.resnet50.preprocess_input(pixels[..., ::-1].astype("float32"))
    np.testing.assert_allclose(np.asarray(mapping(x)), expected, rtol=1e-5, atol=1e-3)
    low = np.array([[[[lo for lo, _ in windows]]]], dtype="float32")
    np.testing.assert_allclose(np.asarray(mapping(low))[0, 0, 0], [-m for m in IMAGENET_BGR_MEAN], atol=1e-4)


def test_only_resnet50_weights_get_the_mapping(calibrated_resnet_file, tmp_path):
    def has_mapping(model):
        return LAYER_NAME in [layer.name for layer in model.layers]

    with_h5 = build_model("pspnet", input_channels=5, input_size=64, pretrained=str(calibrated_resnet_file),
                          modalities=DEFAULT_MODALITIES)
    assert has_mapping(with_h5)
    assert with_h5.get_layer(LAYER_NAME).windows == [list(normalized_range(m)) for m in DEFAULT_MODALITIES]
    scratch = build_model("pspnet", input_channels=5, input_size=64, encoder_width=0.125)
    assert not has_mapping(scratch)
    checkpoint = tmp_path / "fold_0.keras"
    scratch.save(checkpoint)
    assert not has_mapping(build_model("pspnet", input_channels=5, input_size=64, encoder_width=0.125,
                                       pretrained=str(checkpoint)))
    # and the mapping survives a save/load (prediction, resume) in a model that has it
    path = tmp_path / "imagenet.keras"
    with_h5.save(path)
    assert has_mapping(keras.saving.load_model(path, safe_mode=True))


def _frozen_conv1_features(model, maps):
    conv1 = keras.Model(model.input, model.get_layer("conv1_relu").output)
    return np.asarray(conv1(maps, training=False))  # a frozen encoder: BatchNormalization in inference mode


def _spread(features):
    """Median over conv1's filters of the SD of its (post-ReLU) response across pixels and slices."""
    return float(np.median(features.reshape(-1, features.shape[-1]).std(axis=0)))


def test_frozen_pretrained_features_vary_with_the_mapping_and_not_without(calibrated_resnet_file):
    maps = _normalised_maps(np.random.default_rng(2))
    mapped = build_model("pspnet", input_channels=5, input_size=64, pretrained=str(calibrated_resnet_file),
                         modalities=DEFAULT_MODALITIES)
    unmapped = build_pspnet(5, 64, encoder_width=1.0)  # what the encoder saw before the mapping existed
    load_encoder_weights(unmapped, str(calibrated_resnet_file))
    with_mapping, without = _spread(_frozen_conv1_features(mapped, maps)), _spread(_frozen_conv1_features(unmapped, maps))
    # calibrated BN gives unit-scale responses to caffe-scale inputs (these maps have less contrast than
    # photographs: ~0.2); order-1 inputs give about a hundredth of that, most filters exactly 0 after ReLU
    assert with_mapping > 0.1, with_mapping
    assert without < 0.01, without
