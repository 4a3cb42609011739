"""Losses: the focal loss is the paper's α-balanced form, Dice behaves at the extremes, all serialize."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from islesbench.errors import IslesbenchError  # noqa: E402
from islesbench.models.losses import LOSS_NAMES, get_loss  # noqa: E402


def _pair(seed=0, shape=(2, 8, 8, 1)):
    rng = np.random.default_rng(seed)
    y = (rng.random(shape) < 0.3).astype("float32")
    p = rng.uniform(0.02, 0.98, shape).astype("float32")
    return y, p


def _value(loss, y, p):
    return float(keras.ops.convert_to_numpy(loss(y, p)))


def test_focal_with_gamma_zero_is_alpha_weighted_cross_entropy():
    y, p = _pair()
    alpha = 0.3
    expected = np.mean(-(alpha * y * np.log(p) + (1 - alpha) * (1 - y) * np.log(1 - p)))
    assert _value(get_loss("focal", alpha=alpha, gamma=0.0), y, p) == pytest.approx(expected, rel=1e-5)


def test_focal_matches_hand_computed_value():
    # lesion voxel p=0.9: 0.25 * 0.1**2 * -ln 0.9 ; background voxel p=0.2: 0.75 * 0.2**2 * -ln 0.8
    y = np.array([[1.0], [0.0]], "float32")
    p = np.array([[0.9], [0.2]], "float32")
    expected = (0.25 * 0.01 * 0.1053605 + 0.75 * 0.04 * 0.2231436) / 2  # = 3.4788e-3
    assert _value(get_loss("focal", alpha=0.25, gamma=2.0), y, p) == pytest.approx(expected, rel=1e-4)
    # alpha weights the lesion voxel and 1 - alpha the background one (not the other way round, not dropped)
    swapped = (0.75 * 0.01 * 0.1053605 + 0.25 * 0.04 * 0.2231436) / 2
    assert _value(get_loss("focal", alpha=0.75, gamma=2.0), y, p) == pytest.approx(swapped, rel=1e-4)


def test_focal_down_weights_easy_examples():
    y = np.ones((1, 4, 4, 1), "float32")
    easy, hard = np.full_like(y, 0.95), np.full_like(y, 0.3)
    focal, ce = get_loss("focal", gamma=2.0), get_loss("ce")
    assert _value(focal, y, easy) / _value(ce, y, easy) < _value(focal, y, hard) / _value(ce, y, hard)


def test_cross_entropy_value():
    y, p = _pair(1)
    expected = np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert _value(get_loss("ce"), y, p) == pytest.approx(expected, rel=1e-5)


def test_dice_extremes():
    y, _ = _pair(2)
    dice = get_loss("dice")
    assert _value(dice, y, y) == pytest.approx(0.0, abs=1e-6)
    assert _value(dice, y, 1.0 - y) > 0.9
    empty = np.zeros_like(y)
    assert _value(dice, empty, empty) == pytest.approx(0.0, abs=1e-6)  # no lesion, none predicted


def test_dice_is_per_sample():
    y = np.zeros((2, 4, 4, 1), "float32")
    y[0, :2] = 1
    p = y.copy()
    p[1] = 0.5  # second sample: empty truth, half-confident everywhere
    # smooth = 1: sample 0 perfect (0), sample 1: 1 - 1 / (8 + 1)
    assert _value(get_loss("dice"), y, p) == pytest.approx((0 + (1 - 1 / 9)) / 2, rel=1e-5)


def test_focal_plus_dice_is_the_sum():
    y, p = _pair(3)
    total = _value(get_loss("focal+dice", alpha=0.4, gamma=1.5), y, p)
    parts = _value(get_loss("focal", alpha=0.4, gamma=1.5), y, p) + _value(get_loss("dice"), y, p)
    assert total == pytest.approx(parts, rel=1e-5)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_losses_serialize_round_trip(name):
    y, p = _pair(4)
    loss = get_loss(name, alpha=0.4, gamma=1.0)
    config = keras.losses.serialize(loss)
    restored = keras.losses.deserialize(config)
    assert _value(restored, y, p) == pytest.approx(_value(loss, y, p), rel=1e-6)


def test_unknown_loss_is_a_clear_error():
    with pytest.raises(IslesbenchError, match="focal"):
        get_loss("hinge")
