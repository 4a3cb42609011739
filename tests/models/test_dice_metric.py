"""islesbench.models.dice_metric.DiceScore: values, empty samples, serialization, tf.distribute."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from islesbench.models.dice_metric import DiceScore  # noqa: E402
from islesbench.runtime.child_env import child_env  # noqa: E402


def numpy_dice(y_true, y_pred, threshold=0.5):
    t = (y_true >= threshold).reshape(len(y_true), -1)
    p = (y_pred >= threshold).reshape(len(y_pred), -1)
    inter = (t & p).sum(1)
    den = t.sum(1) + p.sum(1)
    return np.where(den == 0, 1.0, 2 * inter / np.maximum(den, 1))


@pytest.mark.parametrize("shape", [(4, 8, 8, 1), (3, 4, 8, 8, 1)], ids=["2d", "3d"])
def test_mean_per_sample_dice(shape):
    rng = np.random.default_rng(0)
    y_true = (rng.random(shape) > 0.6).astype("float32")
    y_pred = rng.random(shape).astype("float32")
    y_true[0] = 0.0
    y_pred[0] = 0.2  # both empty after thresholding: Dice 1
    y_true[1] = 0.0  # reference empty, prediction not: Dice 0
    m = DiceScore()
    m.update_state(y_true, y_pred)
    expected = numpy_dice(y_true, y_pred)
    assert expected[0] == 1.0 and expected[1] == 0.0
    assert float(m.result()) == pytest.approx(expected.mean(), rel=1e-6)


def test_accumulates_over_batches_and_resets():
    rng = np.random.default_rng(1)
    a_t, a_p = (rng.random((2, 6, 6, 1)) > 0.5).astype("float32"), rng.random((2, 6, 6, 1)).astype("float32")
    b_t, b_p = (rng.random((3, 6, 6, 1)) > 0.5).astype("float32"), rng.random((3, 6, 6, 1)).astype("float32")
    m = DiceScore()
    m.update_state(a_t, a_p)
    m.update_state(b_t, b_p)
    expected = np.concatenate([numpy_dice(a_t, a_p), numpy_dice(b_t, b_p)]).mean()
    assert float(m.result()) == pytest.approx(expected, rel=1e-6)
    m.reset_state()
    assert float(m.result()) == 0.0


def test_sample_weight():
    y_true = np.zeros((2, 4, 4, 1), "float32")
    y_true[0, :2] = 1
    y_pred = y_true.copy()
    y_pred[1, 0, 0] = 1  # sample 1: Dice 0
    m = DiceScore()
    m.update_state(y_true, y_pred, sample_weight=np.array([3.0, 1.0]))
    assert float(m.result()) == pytest.approx(0.75)


def test_serializable_round_trip():
    m = DiceScore(threshold=0.3, name="val_dice")
    config = keras.saving.serialize_keras_object(m)
    assert "islesbench" in str(config)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, DiceScore)
    assert restored.threshold == 0.3 and restored.name == "val_dice"


def test_under_model_compile_and_keras_file(tmp_path):
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Identity()])
    model.compile(loss="mse", metrics=[DiceScore()])
    x = np.random.default_rng(2).random((6, 4, 4, 1)).astype("float32")
    y = (x > 0.3).astype("float32")
    result = model.evaluate(x, y, batch_size=3, verbose=0, return_dict=True)
    assert result["dice"] == pytest.approx(numpy_dice(y, x).mean(), rel=1e-6)
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    again = reloaded.evaluate(x, y, batch_size=3, verbose=0, return_dict=True)
    assert again["dice"] == pytest.approx(result["dice"], rel=1e-6)


DISTRIBUTED = textwrap.dedent(
    """
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from islesbench.models.dice_metric import DiceScore
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = keras.Sequential([keras.Input((4, 4, 2, 1)), keras.layers.Identity()])
        model.compile(loss="mse", metrics=[DiceScore()])
    rng = np.random.default_rng(3)
    x = rng.random((12, 4, 4, 2, 1)).astype("float32")
    y = (rng.random((12, 4, 4, 2, 1)) > 0.5).astype("float32")
    y[:2] = 0; x[:2] = 0  # both empty
    print("DICE", model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)["dice"])
    """
)


def test_under_tf_distribute_mirrored_two_replicas():
    proc = subprocess.run([sys.executable, "-c", DISTRIBUTED], capture_output=True, text=True, env=child_env(),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    value = float(next(line for line in proc.stdout.splitlines() if line.startswith("DICE")).split()[1])
    rng = np.random.default_rng(3)
    x = rng.random((12, 4, 4, 2, 1)).astype("float32")
    y = (rng.random((12, 4, 4, 2, 1)) > 0.5).astype("float32")
    y[:2] = 0
    x[:2] = 0
    assert value == pytest.approx(numpy_dice(y, x).mean(), rel=1e-5)


def test_threshold_is_inclusive():
    y = np.zeros((1, 2, 2, 1), "float32")
    y[0, 0, 0] = 1
    p = np.zeros((1, 2, 2, 1), "float32")
    p[0, 0, 0] = 0.5  # at the threshold: lesion, as in `islesbench evaluate`
    m = DiceScore()
    m.update_state(y, p)
    assert float(m.result()) == 1.0
