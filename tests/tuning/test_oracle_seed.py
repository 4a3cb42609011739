"""`tune --seed 0` is a seed: two fresh searches draw the same trials (KerasTuner reads 0 as "none")."""

import keras_tuner

from islesbench.tuning.cv_tuner import make_oracle


def _first_values(seed):
    hp = keras_tuner.HyperParameters()
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    hp.Int("depth", 2, 4)
    oracle = make_oracle("random", hp, max_trials=3, seed=seed, max_epochs=2)
    return oracle.seed, [oracle.populate_space(f"t{i}")["values"] for i in range(3)]


def test_seed_zero_draws_the_same_trials_every_time():
    assert _first_values(0) == _first_values(0)
    assert _first_values(0) != _first_values(1)
