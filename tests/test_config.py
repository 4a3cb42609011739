"""Experiment configuration: names, overrides, validation, JSON round trip."""

import json

import pytest

from islesbench.config import (ExperimentConfig, apply_overrides, changed_fields, command_config, load_config_file,
                               profile_config)
from islesbench.errors import IslesbenchError


@pytest.mark.parametrize("overrides, name", [
    ({"model": {"arch": "pspnet", "pretrained": "imagenet"}, "loss": {"name": "focal"}}, "pspnet-imagenet-focal"),
    ({"model": {"arch": "pspnet"}, "loss": {"name": "ce"}}, "pspnet-scratch-ce"),
    ({"model": {"arch": "pspnet", "pretrained": "/w/radimagenet.h5"}, "loss": {"name": "ce"}}, "pspnet-radimagenet-ce"),
    ({"model": {"arch": "unet"}, "loss": {"name": "focal+dice"}}, "unet-focal-dice"),
    ({"model": {"arch": "threshold"}}, "threshold"),
])
def test_names_say_what_a_config_is(overrides, name):
    assert apply_overrides(ExperimentConfig(), overrides).name == name


def test_json_round_trip(tmp_path):
    c = apply_overrides(profile_config("quick"), {"model": {"arch": "vnet"}, "train": {"epochs": 3}})
    c.save(tmp_path / "config.json", fold=2)
    d = json.loads((tmp_path / "config.json").read_text())
    assert d["name"] == "vnet-focal" and d["fold"] == 2 and d["train"]["epochs"] == 3
    assert ExperimentConfig.from_dict(d) == c


@pytest.mark.parametrize("overrides, message", [
    ({"model": {"arch": "resnet"}}, "model.arch must be one of"),
    ({"model": {"arch": "unet", "pretrained": "imagenet"}}, "applies to pspnet only"),
    ({"data": {"input_size": 100}}, "multiple of 8"),
    ({"loss": {"alpha": 1.5}}, "loss.alpha"),
    ({"model": {"freeze_encoder_epochs": 2}}, "needs a pretrained encoder"),
    ({"model": {"weight_gradients": "fast"}}, "model.weight_gradients must be one of auto, native, matmul"),
])
def test_invalid_combinations_fail_at_start(overrides, message):
    with pytest.raises(IslesbenchError, match=message):
        apply_overrides(ExperimentConfig(), overrides).validate()


def test_unknown_field_is_named():
    with pytest.raises(IslesbenchError, match="TrainConfig.epoch;"):
        apply_overrides(ExperimentConfig(), {"train": {"epoch": 3}})


def test_config_file_errors(tmp_path):
    with pytest.raises(IslesbenchError, match="does not exist"):
        load_config_file(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(IslesbenchError, match="not valid JSON"):
        load_config_file(bad)


@pytest.mark.parametrize("flag", [None, "none", "Scratch"])
def test_command_config_reads_none_and_scratch_as_from_scratch(flag):
    """`islesbench run` and `islesbench tune` share this: 'none' must not be taken for a weights file."""
    config = command_config(profile="quick", arch="pspnet", loss="focal", pretrained=flag, seed=0)
    assert config.model.pretrained is None and config.name == "pspnet-scratch-focal"
    assert config.model.encoder_width == profile_config("quick", "pspnet").model.encoder_width


def test_command_config_applies_overrides_then_flags():
    config = command_config(profile="quick", arch="unet", loss="ce", pretrained=None, seed=3, epochs=2,
                            overrides=[{"train": {"epochs": 9, "batch_size": 4}}, {"loss": {"gamma": 1.0}}])
    assert (config.train.epochs, config.train.batch_size, config.train.seed) == (2, 4, 3)
    assert config.loss.gamma == 1.0 and config.name == "unet-ce-seed3"  # each seed runs into its own folder


def test_changed_fields_compares_as_json_stores():
    saved = json.loads(json.dumps({"data": {"modalities": ("CT",)}, "fold": 1, "grid": 256}))
    assert changed_fields(saved, {"data": {"modalities": ("CT",)}, "fold": 2, "grid": 256}, ignored=("fold",)) == []
    assert changed_fields(saved, {"data": {"modalities": ("CT",)}, "fold": 1, "grid": 128}) == ["grid"]


def test_fraction_and_seed_suffixes_are_built_and_stripped_in_one_place():
    from islesbench.config import base_name, fraction_name, seeded_name

    config = apply_overrides(profile_config("quick", "unet"), {"data": {"train_fraction": 0.25}, "train": {"seed": 2}})
    assert config.name == seeded_name(fraction_name("unet-focal", 0.25), 2) == "unet-focal-frac0.25-seed2"
    assert fraction_name("mine", 1.0) == "mine"
    stored = config.to_dict()
    assert base_name(stored) == "unet-focal-frac0.25"  # repeats over seeds share it
    assert base_name(stored, fraction=True) == "unet-focal"  # the curve's line
    assert base_name({**stored, "name": "custom"}, fraction=True) == "custom"
