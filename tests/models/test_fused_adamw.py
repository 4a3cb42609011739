"""FusedAdamW updates as keras.optimizers.AdamW does, in one fused kernel per variable, and resumes from a checkpoint."""

import keras
import numpy as np
import pytest

from benchmark_scripts import training_step_ops

from islesbench.training.compile import cosine_adamw
from islesbench.models.fused_adamw import FusedAdamW


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(1, 1)(x))


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(4, 8, 8, 3)).astype("float32"), rng.normal(size=(4, 8, 8, 1)).astype("float32")


def _trained(optimizer, steps=10):
    model = _model()
    model.compile(optimizer=optimizer, loss="mse")
    x, y = _data()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return model


@pytest.mark.parametrize("warmup", [0, 3])
def test_updates_match_keras_adamw(warmup):
    def schedule():
        return keras.optimizers.schedules.CosineDecay(0.0 if warmup else 1e-2, 50, alpha=0.01,
                                                      warmup_target=1e-2 if warmup else None, warmup_steps=warmup)

    fused = _trained(FusedAdamW(learning_rate=schedule(), weight_decay=1e-2))
    plain = _trained(keras.optimizers.AdamW(learning_rate=schedule(), weight_decay=1e-2))
    for a, b in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # the same formula; the last bit may round apart


def test_the_training_optimizer_runs_one_adam_kernel_per_variable_and_none_of_keras_element_wise_update():
    model = _model()
    model.compile(optimizer=cosine_adamw(1e-3, 1e-4, total_steps=100), loss="mse")
    ran = [op_type for _, op_type in training_step_ops(model, *_data())]
    assert ran.count("ResourceApplyAdam") == len(model.trainable_variables)
    assert "Sqrt" not in ran  # Keras' update takes one per variable


def test_a_checkpoint_resumes_with_the_optimizer_state(tmp_path):
    model = _trained(cosine_adamw(1e-3, 1e-4, total_steps=100), steps=3)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.optimizer) is FusedAdamW
    x, y = _data()
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
