"""The search space: what is searched for which model/loss pair, and how trial values become a config."""

from __future__ import annotations

import pytest

from islesbench.config import apply_overrides, profile_config
from islesbench.errors import IslesbenchError
from islesbench.tuning.search_space import (SEARCH_SPACE, build_search_space, hparams_to_overrides, searched_names,
                                            trial_config)


@pytest.mark.parametrize("arch,loss,expected,absent", [
    ("unet", "focal", {"focal_alpha", "focal_gamma", "base_width", "depth"}, {"ppm_dropout"}),
    ("vnet", "ce", {"base_width", "depth"}, {"focal_alpha", "focal_gamma", "ppm_dropout"}),
    ("pspnet", "focal+dice", {"ppm_dropout", "focal_alpha"}, {"base_width", "depth"}),
    ("pspnet", "dice", {"ppm_dropout"}, {"focal_alpha", "focal_gamma", "base_width"}),
])
def test_space_depends_on_arch_and_loss(arch, loss, expected, absent):
    names = set(searched_names(arch, loss))
    common = {"learning_rate", "weight_decay", "augment_strength", "input_size"}
    assert common | expected <= names
    assert not names & absent


def test_threshold_has_nothing_to_tune():
    with pytest.raises(IslesbenchError):
        searched_names("threshold", "focal")


@pytest.mark.parametrize("profile", ["quick", "paper"])
@pytest.mark.parametrize("arch", ["unet", "vnet", "pspnet"])
def test_sampled_values_make_valid_configs(arch, profile):
    import keras_tuner

    base = apply_overrides(profile_config(profile), {"model": {"arch": arch}})
    space = build_search_space(arch, "focal", profile, base=base, max_input_size=256)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("x", "max"), max_trials=5, seed=1, hyperparameters=space)
    oracle._set_project_dir("/tmp", "unused")
    for _ in range(5):
        values = oracle._random_values()
        config = trial_config(base, values)
        for name, value in values.items():
            section, key = SEARCH_SPACE[name].target
            assert getattr(getattr(config, section), key) == pytest.approx(value, rel=1e-5)
    # Defaults come from the base configuration when they lie in range.
    assert space.get("learning_rate") == pytest.approx(base.optimizer.learning_rate)


def test_input_size_limited_to_the_grid_and_overrides():
    space = build_search_space("unet", "ce", "quick", max_input_size=96,
                               space_overrides={"base_width": [4, 8], "depth": 2,
                                                "learning_rate": {"min": 1e-3, "max": 1e-2, "log": True}})
    by_name = {p.name: p for p in space.space}
    assert list(by_name["input_size"].values) == [64, 96]
    assert list(by_name["base_width"].values) == [4, 8]
    assert by_name["depth"].value == 2  # Fixed
    assert (by_name["learning_rate"].min_value, by_name["learning_rate"].max_value) == (1e-3, 1e-2)
    with pytest.raises(IslesbenchError, match="unknown search-space entries"):
        build_search_space("unet", "ce", "quick", space_overrides={"nonsense": 1})


def test_hyperband_budget_maps_to_epochs():
    values = {"learning_rate": 1e-3, "tuner/epochs": 3, "tuner/initial_epoch": 1, "tuner/trial_id": "0001"}
    assert hparams_to_overrides(values) == {"optimizer": {"learning_rate": 1e-3}, "train": {"epochs": 3}}
    assert hparams_to_overrides(values, include_budget=False) == {"optimizer": {"learning_rate": 1e-3}}
    assert trial_config(profile_config("quick"), values).train.epochs == 3
