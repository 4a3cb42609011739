"""train.precision: `auto` resolution, Keras' policy on the models, float32 outputs and losses, and runs."""

import json

import keras
import numpy as np
import pytest

from islesbench.config import ModelConfig, apply_overrides, profile_config
from islesbench.errors import IslesbenchError
from islesbench.models import build_from_config, losses
from islesbench.runtime import precision
from islesbench.training.cross_validation import run_configuration

CPUINFO_BF16 = "processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n"
CPUINFO_PLAIN = "processor\t: 0\nflags\t\t: fpu sse avx2 fma\n"


def test_cpu_flags_are_read_from_cpuinfo():
    assert precision.cpu_bf16_flags(CPUINFO_BF16) == ["avx512_bf16"]
    assert precision.cpu_bf16_flags(CPUINFO_PLAIN) == []
    assert precision.cpu_bf16_flags("flags : amx_bf16 amx_tile avx512_bf16\n") == ["avx512_bf16", "amx_bf16"]


@pytest.mark.parametrize("cpu_flags, gpus, onednn, expected", [
    (["avx512_bf16"], [], None, "mixed_bfloat16"),
    ([], [], None, "float32"),
    (["avx512_bf16"], [], "0", "float32"),  # without oneDNN the bfloat16 convolutions are emulated
    ([], [(8, 0)], None, "mixed_bfloat16"),
    ([], [(9, 0), (8, 6)], None, "mixed_bfloat16"),
    (["avx512_bf16"], [(7, 5)], None, "float32"),  # a Turing GPU trains, not the CPU
    ([], [(8, 0), (7, 0)], None, "float32"),
])
def test_auto_is_bfloat16_only_where_the_hardware_runs_it(monkeypatch, cpu_flags, gpus, onednn, expected):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda cpuinfo=None: cpu_flags)
    monkeypatch.setattr(precision, "_gpu_capabilities", lambda: gpus)
    if onednn is None:
        monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    else:
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", onednn)
    assert precision.resolve("auto") == expected
    assert precision.describe("auto").startswith(f"{expected} (auto: ")
    for explicit in ("float32", "mixed_bfloat16", "mixed_float16"):
        assert precision.resolve(explicit) == explicit


def test_unknown_precision_is_refused():
    with pytest.raises(IslesbenchError, match="train.precision"):
        precision.resolve("bfloat16")
    bad = apply_overrides(profile_config("quick", "unet"), {"train": {"precision": "half"}})
    with pytest.raises(IslesbenchError, match="train.precision"):
        bad.validate()


def test_policy_scope_restores_the_global_policy():
    before = keras.mixed_precision.global_policy().name
    with precision.policy("mixed_bfloat16"):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == before


@pytest.mark.parametrize("arch, options", [
    ("unet", {"base_width": 4, "depth": 3}),
    ("vnet", {"base_width": 4, "depth": 3}),
    ("pspnet", {"encoder_width": 0.0625}),
])
def test_bfloat16_models_compute_in_bfloat16_and_answer_in_float32(arch, options):
    with precision.policy("mixed_bfloat16"):
        model = build_from_config(ModelConfig(arch=arch, **options), 5, 48)
    assert precision.model_precision(model) == "mixed_bfloat16"
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in model.weights)  # master weights stay float32
    shape = (1, 8, 48, 48, 5) if arch == "vnet" else (1, 48, 48, 5)
    out = model(np.random.default_rng(0).normal(size=shape).astype("float32"), training=False)
    out = out["mask"] if isinstance(out, dict) else out
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert np.all(np.isfinite(np.asarray(out)))
    # The prior-bias initialisation (p = 0.01) survives the bfloat16 logit: the untrained output is near it.
    assert 0.001 < float(np.median(np.asarray(out))) < 0.1


def test_mixed_float16_compiles_with_loss_scaling():
    from islesbench.training.compile import compile_model

    config = apply_overrides(profile_config("quick", "unet"), {"model": {"base_width": 4, "depth": 3},
                                                               "train": {"precision": "mixed_float16"}})
    with precision.policy("mixed_float16"):
        model = build_from_config(config.model, 5, 48)
    compile_model(model, config, steps_per_epoch=2)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize("name", ["focal", "ce", "dice", "focal+dice"])
def test_losses_stay_finite_on_saturated_bfloat16_logits(name):
    """Probabilities at 0 and 1 exactly (what a bfloat16 logit of ±20 gives after the float32 sigmoid)."""
    logits = keras.ops.cast(keras.ops.convert_to_tensor([[-40.0, -20.0, 0.0, 20.0, 40.0]]), "bfloat16")
    probs = keras.layers.Activation("sigmoid", dtype="float32")(logits)
    y = np.array([[1.0, 0.0, 1.0, 1.0, 0.0]], "float32")[..., None]
    value = losses.get_loss(name)(y, keras.ops.expand_dims(probs, -1))
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    assert np.isfinite(float(value))


def test_with_precision_rebuilds_a_model_with_the_same_weights():
    model = build_from_config(ModelConfig(arch="unet", base_width=4, depth=3), 5, 48)
    assert precision.with_precision(model, "float32") is model
    x = np.random.default_rng(1).normal(size=(2, 48, 48, 5)).astype("float32")
    half = precision.with_precision(model, "mixed_bfloat16")
    assert precision.model_precision(half) == "mixed_bfloat16"
    for a, b in zip(model.get_weights(), half.get_weights()):
        np.testing.assert_array_equal(a, b)
    p32, p16 = np.asarray(model(x)), np.asarray(half(x))
    assert keras.backend.standardize_dtype(half(x).dtype) == "float32"
    assert np.max(np.abs(p32 - p16)) < 0.05  # bfloat16 keeps ~3 significant digits


def test_a_run_records_the_resolved_precision(tiny_prepared, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "resolve", lambda p: "mixed_bfloat16" if p == "auto" else p)
    config = apply_overrides(profile_config("quick", "unet"), {
        "model": {"base_width": 4, "depth": 3}, "data": {"input_size": 48},
        "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4}})
    assert config.train.precision == "auto"
    run_dir = run_configuration(config, tiny_prepared, tmp_path, folds=[0])
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["train"]["precision"] == "mixed_bfloat16"
    from islesbench.models.saving import load_checkpoint

    model = load_checkpoint(run_dir / "fold_0" / "checkpoint_last.keras")
    assert precision.model_precision(model) == "mixed_bfloat16"  # validation and predict use it too
    probs = json.loads((run_dir / "fold_0" / "threshold.json").read_text())
    assert 0.0 < probs["threshold"] < 1.0
