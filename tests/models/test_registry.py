"""The model registry is the one table of models (no Keras needed to read it)."""

from __future__ import annotations

import dataclasses

import pytest

from islesbench import config, models
from islesbench.errors import IslesbenchError


def test_archs_are_the_learned_models_plus_the_threshold_baseline():
    assert len(set(config.ARCHS)) == len(config.ARCHS)
    assert sorted([*models.MODELS, "threshold"]) == sorted(config.ARCHS)
    assert models.MODEL_NAMES == tuple(models.MODELS)


def test_every_entry_names_model_config_fields_only():
    fields = {f.name for f in dataclasses.fields(config.ModelConfig)} - {"arch"}
    for name, spec in models.MODELS.items():
        assert set(spec.options) <= fields, name
        assert callable(spec.builder), name


def test_is_3d_and_unknown_names_come_from_the_table():
    assert [name for name, spec in models.MODELS.items() if spec.is_3d] == ["vnet"]
    assert models.is_3d("vnet") and not models.is_3d("unet") and not models.is_3d("pspnet")
    with pytest.raises(IslesbenchError, match="unknown model 'threshold'; choose one of pspnet, unet, vnet"):
        models.is_3d("threshold")
