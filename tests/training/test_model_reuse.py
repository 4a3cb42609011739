"""Folds that reuse the previous fold's compiled model train exactly what a freshly built model trains."""

import csv

import numpy as np
import pytest

from islesbench.config import apply_overrides, profile_config
from islesbench.models.saving import load_checkpoint
from islesbench.storage import run_layout
from islesbench.training import fold, model_reuse
from islesbench.training.cross_validation import run_configuration

TINY = {"model": {"arch": "unet", "base_width": 4, "depth": 3}, "data": {"input_size": 48},
        "train": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 4}}


def _learned_columns(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(f)]


@pytest.fixture
def two_ways(tiny_prepared, tmp_path, monkeypatch):
    """Both folds trained with every model built afresh and with reuse; per way, the model each fold trained."""
    config = apply_overrides(profile_config("quick", "unet"), TINY)
    out, trained = {}, {}
    fit = fold.fit_fold

    def recording_fit(*args, **kwargs):
        model = fit(*args, **kwargs)
        trained[enabled].append(model)
        return model

    monkeypatch.setattr(fold, "fit_fold", recording_fit)
    for enabled in (False, True):
        monkeypatch.setattr(model_reuse, "ENABLED", enabled)
        model_reuse.forget()
        out[enabled] = tmp_path / f"reuse_{enabled}"
        trained[enabled] = []
        run_configuration(config, tiny_prepared, out[enabled])
    model_reuse.forget()
    return config, out, trained


def test_reused_folds_equal_fresh_ones(two_ways):
    config, out, trained = two_ways
    fresh_models, reused_models = trained[False], trained[True]
    assert len(fresh_models) == len(reused_models) == 2
    assert fresh_models[1] is not fresh_models[0]  # reuse off: fold 1 built its own model
    assert reused_models[1] is reused_models[0]  # reuse on: fold 1 trained fold 0's model, reset
    for k in (0, 1):
        fresh, reused = (run_layout.fold_paths(out[e], config.name, k) for e in (False, True))
        assert _learned_columns(reused.history_csv) == _learned_columns(fresh.history_csv)
        for a, b in zip(load_checkpoint(fresh.checkpoint_last).get_weights(),
                        load_checkpoint(reused.checkpoint_last).get_weights()):
            np.testing.assert_array_equal(a, b)
        assert reused.metrics_csv.read_text() == fresh.metrics_csv.read_text()


def test_only_a_matching_configuration_is_reused(tiny_prepared, monkeypatch):
    import keras

    monkeypatch.setattr(model_reuse, "ENABLED", True)
    config = apply_overrides(profile_config("quick", "unet"), TINY)
    strategy = type("S", (), {"num_replicas_in_sync": 1})()
    key = model_reuse.reuse_key(config, 5, 3, strategy)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    model_reuse.keep(key, model)
    assert model_reuse.reuse_key(config, 5, 4, strategy) != key  # another schedule
    other = apply_overrides(config, {"train": {"seed": 1}})
    assert model_reuse.reuse_key(other, 5, 3, strategy) != key
    two = type("S", (), {"num_replicas_in_sync": 2})()
    assert model_reuse.reuse_key(config, 5, 3, two) is None
    before = model.get_weights()
    model.layers[-1].kernel.assign(np.ones((4, 1), "float32"))
    assert model_reuse.reused_model(key) is model  # reset to the state it was kept in
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert model_reuse.reused_model(model_reuse.reuse_key(other, 5, 3, strategy)) is None
    assert not model_reuse.holding()  # another configuration's model is dropped, not kept beside it
    model_reuse.forget()


def test_an_encoder_file_replaced_at_the_same_path_is_not_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(model_reuse, "ENABLED", True)
    weights = tmp_path / "encoder.keras"
    weights.write_bytes(b"first pretraining")
    config = apply_overrides(profile_config("quick", "pspnet"), {"model": {"pretrained": str(weights)}})
    strategy = type("S", (), {"num_replicas_in_sync": 1})()
    key = model_reuse.reuse_key(config, 5, 3, strategy)
    assert model_reuse.reuse_key(config, 5, 3, strategy) == key
    weights.write_bytes(b"pretrained again")
    assert model_reuse.reuse_key(config, 5, 3, strategy) != key


def test_kept_model_is_frozen_out_of_garbage_collection_until_forgotten(tiny_prepared, tmp_path, monkeypatch):
    import gc

    from islesbench.training import fold

    monkeypatch.setattr(model_reuse, "ENABLED", True)
    frozen = []
    finish = fold.finish_fold
    monkeypatch.setattr(fold, "finish_fold", lambda paths: frozen.append(gc.get_freeze_count()) or finish(paths))
    model_reuse.forget()
    run_configuration(apply_overrides(profile_config("quick", "unet"), TINY), tiny_prepared, tmp_path)
    assert len(frozen) == 2 and all(n > 0 for n in frozen)  # after each fold's release_memory
    assert gc.get_freeze_count() == 0  # thawed when the run let go of the model
