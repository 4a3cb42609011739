"""One shared test routine, run on every registered model at tiny sizes (keras-hub style).

Each case says how to build the model and which input shapes it must accept; every check — output shape
(incl. sizes that are not square or not powers of two), `.keras` save/reload with identical predictions,
training steps lowering the loss, mixed precision — runs the same way on all of them.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from islesbench.errors import IslesbenchError  # noqa: E402
from islesbench.models import (MODEL_NAMES, build_model, encoder_layers, is_3d, set_encoder_trainable,  # noqa: E402
                               without_aux)
from islesbench.models.initialization import LESION_PRIOR  # noqa: E402
from islesbench.models.losses import get_loss  # noqa: E402

CHANNELS = 5
# id -> (registry name, ModelConfig kwargs, input shapes without batch that the model must map to (..., 1)).
CASES = {
    "pspnet": ("pspnet", {"dropout": 0.1}, [(40, 40, CHANNELS), (48, 56, CHANNELS)]),
    "unet": ("unet", {"base_width": 8, "depth": 3}, [(40, 40, CHANNELS), (48, 56, CHANNELS)]),
    "vnet": (
        "vnet",
        {"base_width": 8, "depth": 3, "anisotropic": True},
        [(2, 32, 32, CHANNELS), (3, 40, 40, CHANNELS), (1, 32, 40, CHANNELS)],
    ),
    "vnet-isotropic": (
        "vnet",
        {"base_width": 8, "depth": 3, "anisotropic": False},
        [(2, 32, 32, CHANNELS), (3, 40, 40, CHANNELS)],
    ),
}
_cache: dict = {}


def _model(case_id):
    """The case's model, built once per session (building PSPNet takes seconds)."""
    if case_id not in _cache:
        keras.utils.set_random_seed(0)
        name, kwargs, _ = CASES[case_id]
        _cache[case_id] = build_model(name, input_channels=CHANNELS, **kwargs)
    return _cache[case_id]


def _batch(shape, n=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype("float32")
    y = np.zeros((n, *shape[:-1], 1), "float32")
    y[(slice(None),) * (len(shape) - 2) + (slice(8, 20), slice(10, 24))] = 1.0  # a block "lesion"
    return x, y


@pytest.fixture(params=sorted(CASES))
def case_id(request):
    return request.param


def test_every_registered_model_is_covered():
    assert {name for name, _, _ in CASES.values()} == set(MODEL_NAMES)


def test_output_shape(case_id):
    model = _model(case_id)
    for shape in CASES[case_id][2]:
        x, _ = _batch(shape)
        y = model.predict(x, verbose=0)
        assert y.shape == (2, *shape[:-1], 1), shape
        assert y.dtype == np.float32
        assert np.all((y >= 0) & (y <= 1))
    assert model.get_layer("mask").dtype_policy.compute_dtype == "float32"


def test_fresh_model_starts_at_the_lesion_prior(case_id):
    model = _model(case_id)
    x, _ = _batch(CASES[case_id][2][0], seed=4)
    y = model.predict(x, verbose=0)
    # Without the prior bias the median pixel starts near 0.5 (a zero-mean logit).
    assert np.median(y) < 5 * LESION_PRIOR, np.median(y)


def test_prior_bias_per_channel_and_scalar():
    from islesbench.models.initialization import prior_bias

    bias = prior_bias([0.2, 0.5, 0.01])(shape=(3,))
    np.testing.assert_allclose(1 / (1 + np.exp(-np.asarray(bias))), [0.2, 0.5, 0.01], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(prior_bias()(shape=(1,))), [np.log(LESION_PRIOR / (1 - LESION_PRIOR))],
                               rtol=1e-6)
    with pytest.raises(ValueError):
        prior_bias([0.2, 1.0])


def test_dilated_resnet_stages_include_the_half_resolution_stem():
    from islesbench.models.resnet50_dilated import resnet50_dilated

    stages = resnet50_dilated(keras.Input((48, 48, CHANNELS)), 0.125)
    assert tuple(stages["conv1"].shape[1:3]) == (24, 24) and tuple(stages["conv2"].shape[1:3]) == (12, 12)


def test_fresh_resnet_blocks_start_as_the_identity():
    stage_input = _model("pspnet").get_layer("conv3_block1_out").output
    later_blocks = [_model("pspnet").get_layer(f"conv3_block{i}_out").output for i in (2, 3, 4)]
    probe = keras.Model(_model("pspnet").input, [stage_input, *later_blocks])
    x, _ = _batch((40, 40, CHANNELS), seed=5)
    first, *rest = probe.predict(x, verbose=0)
    assert np.abs(first).max() > 0
    for out in rest:
        np.testing.assert_allclose(out, first, atol=1e-6)


def test_save_reload_identical(case_id, tmp_path):
    model = _model(case_id)
    x, _ = _batch(CASES[case_id][2][0], seed=1)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_array_equal(model.predict(x, verbose=0), reloaded.predict(x, verbose=0))
    assert reloaded.to_json() == model.to_json()


def test_training_steps_lower_the_loss(case_id):
    keras.utils.set_random_seed(1)
    name, kwargs, shapes = CASES[case_id]
    model = build_model(name, input_channels=CHANNELS, **kwargs)  # fresh: training changes weights
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=get_loss("ce"))
    x, y = _batch(shapes[0])
    losses = [float(model.train_on_batch(x, y)) for _ in range(6)]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0], losses


def test_mixed_precision_builds_with_float32_output(case_id):
    name, kwargs, shapes = CASES[case_id]
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model(name, input_channels=CHANNELS, **kwargs)
        conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D | keras.layers.Conv3D))
        assert conv.compute_dtype == "float16"
        assert model.output.dtype == "float32"
        x, _ = _batch(shapes[0], n=1)
        y = model.predict(x, verbose=0)
        assert y.dtype == np.float32 and np.isfinite(y).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_export_saved_model_serves_the_same_predictions(tmp_path):
    tf = pytest.importorskip("tensorflow")
    model = _model("vnet-isotropic")  # dynamic depth, padding and cropping layers: the hardest to export
    model.export(str(tmp_path / "saved"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "saved"))
    for shape in CASES["vnet-isotropic"][2]:
        x, _ = _batch(shape, seed=2)
        np.testing.assert_allclose(served.serve(x).numpy(), model.predict(x, verbose=0), atol=1e-5)


def test_isotropic_vnet_pads_depth_with_zeros_and_crops_back():
    model = _model("vnet-isotropic")  # pads to a multiple of 2**3 = 8 slices
    x, _ = _batch((3, 32, 32, CHANNELS), n=1, seed=3)
    padded = np.concatenate([x, np.zeros((1, 5, 32, 32, CHANNELS), "float32")], axis=1)
    np.testing.assert_allclose(model.predict(x, verbose=0), model.predict(padded, verbose=0)[:, :3], atol=1e-5)


@pytest.mark.slow  # traces a second PSPNet train step (~40 s on 2 cores)
def test_pspnet_aux_head_trains_and_is_dropped_for_prediction():
    keras.utils.set_random_seed(2)
    model = build_model("pspnet", input_channels=CHANNELS, aux_weight=0.4)
    assert set(model.output) == {"mask", "aux"}
    aux_weight = 0.4  # the trainer's ModelConfig.aux_weight
    model.compile(
        optimizer="adam",
        loss={"mask": get_loss("focal"), "aux": get_loss("focal")},
        loss_weights={"mask": 1.0, "aux": aux_weight},
    )
    x, y = _batch((40, 40, CHANNELS))
    logs = model.train_on_batch(x, {"mask": y, "aux": y}, return_dict=True)
    assert np.isfinite(logs["loss"])
    plain = without_aux(model)
    assert plain.predict(x, verbose=0).shape == (2, 40, 40, 1)
    np.testing.assert_array_equal(plain.predict(x, verbose=0), model.predict(x, verbose=0)["mask"])


def test_pspnet_aux_head_is_a_second_output_dropped_for_prediction():
    model = build_model("pspnet", input_channels=CHANNELS, aux_weight=0.4)
    assert set(model.output) == {"mask", "aux"}
    x, _ = _batch((40, 48, CHANNELS), n=1)
    out = model.predict(x, verbose=0)
    assert out["aux"].shape == out["mask"].shape == (1, 40, 48, 1)
    np.testing.assert_array_equal(without_aux(model).predict(x, verbose=0), out["mask"])
    assert without_aux(_model("unet")) is _model("unet")


def test_encoder_layers_and_freezing():
    pspnet = _model("pspnet")
    names = [layer.name for layer in encoder_layers(pspnet)]
    assert names[0] == "conv1_pad" and "conv5_block3_out" in names
    assert not any(n.startswith(("ppm_", "head_", "mask")) for n in names)
    assert encoder_layers(_model("unet")) == []
    n_trainable = len(pspnet.trainable_weights)
    try:
        set_encoder_trainable(pspnet, False)
        frozen = {id(w) for layer in encoder_layers(pspnet) for w in layer.weights}
        assert not frozen & {id(w) for w in pspnet.trainable_weights}
        assert pspnet.get_layer("head_conv").trainable
    finally:
        set_encoder_trainable(pspnet, True)
    assert len(pspnet.trainable_weights) == n_trainable


def test_pspnet_weights_match_keras_resnet50_by_name():
    pspnet = build_model("pspnet", input_channels=3)
    resnet = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(None, None, 3))
    weighted = [layer for layer in resnet.layers if layer.weights]
    assert len(weighted) == 106  # 53 conv + 53 BN
    for layer in weighted:
        ours = pspnet.get_layer(layer.name)
        assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in layer.weights], layer.name
    assert pspnet.get_layer("conv4_block1_2_conv").dilation_rate == (2, 2)
    assert pspnet.get_layer("conv5_block3_2_conv").dilation_rate == (4, 4)
    assert pspnet.get_layer("conv4_block1_1_conv").strides == (1, 1)


def test_registry_contract():
    assert is_3d("vnet") and not is_3d("pspnet") and not is_3d("unet")
    fixed = build_model("unet", input_channels=2, input_size=48, base_width=4, depth=3, pretrained=None)
    assert fixed.input_shape == (None, 48, 48, 2)
    # ModelConfig fields a model does not use are ignored
    build_model("unet", input_channels=1, base_width=4, depth=2, anisotropic=False, aux_weight=0.0)
    with pytest.raises(IslesbenchError, match="unknown model"):
        build_model("segnet", input_channels=5)
    with pytest.raises(IslesbenchError, match="unknown model option"):
        build_model("unet", input_channels=5, width=3)
    with pytest.raises(IslesbenchError, match="divisible by 8"):
        build_model("pspnet", input_channels=5, input_size=60)
    with pytest.raises(IslesbenchError, match="pspnet only"):
        build_model("unet", input_channels=5, pretrained="imagenet")


def test_pyramid_pooling_layers_match_reference_ops():
    tf = pytest.importorskip("tensorflow")
    from islesbench.models.pspnet import AdaptiveAveragePooling2D, BilinearResizeLike

    rng = np.random.default_rng(5)
    x = rng.random((2, 5, 6, 3)).astype("float32")
    resized = keras.ops.convert_to_numpy(BilinearResizeLike()([x, np.zeros((2, 40, 48, 1), "float32")]))
    np.testing.assert_allclose(resized, tf.image.resize(x, (40, 48), method="bilinear").numpy(), atol=1e-6)
    x = rng.random((1, 7, 10, 2)).astype("float32")
    pooled = keras.ops.convert_to_numpy(AdaptiveAveragePooling2D(3)(x))
    for i in range(3):  # torch.nn.functional.adaptive_avg_pool2d windows: [floor(i n / b), ceil((i+1) n / b))
        for j in range(3):
            window = x[0, (i * 7) // 3 : -((-(i + 1) * 7) // 3), (j * 10) // 3 : -((-(j + 1) * 10) // 3)]
            np.testing.assert_allclose(pooled[0, i, j], window.mean(axis=(0, 1)), atol=1e-6)
