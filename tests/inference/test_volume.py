"""Whole-volume prediction: fixed-shape batches, resizing to the model's input and back."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from islesbench.inference import volume  # noqa: E402
from islesbench.models import build_model  # noqa: E402


@pytest.fixture(scope="module")
def unet():
    keras.utils.set_random_seed(0)
    return build_model("unet", input_channels=2, input_size=None, base_width=4, depth=2)


@pytest.mark.parametrize("depth", [1, 3, 4, 7])
def test_every_slice_is_predicted_as_alone(unet, depth):
    """Short last batches are padded to the batch size; the padding must not change any real slice."""
    rng = np.random.default_rng(depth)
    image = rng.normal(size=(depth, 16, 16, 2)).astype("float32")
    prob = volume.predict_grid(unet, image, is_3d=False, batch_size=4)
    assert prob.shape == (depth, 16, 16)
    alone = np.stack([unet.predict_on_batch(image[i:i + 1])[0, ..., 0] for i in range(depth)])
    np.testing.assert_allclose(prob, alone, atol=1e-5)


def test_resized_to_a_fixed_input_size_and_back():
    keras.utils.set_random_seed(0)
    fixed = build_model("unet", input_channels=2, input_size=8, base_width=4, depth=2)
    image = np.random.default_rng(0).normal(size=(3, 16, 16, 2)).astype("float32")
    prob = volume.predict_grid(fixed, image, is_3d=False)
    assert prob.shape == (3, 16, 16)
    assert np.all((prob >= 0) & (prob <= 1))


def test_threshold_from_per_case_terms_is_the_mean_dice_argmax():
    rng = np.random.default_rng(0)
    probs = [rng.random((6, 7, 4)).astype(np.float32) ** rng.uniform(0.5, 3) for _ in range(5)]
    masks = [rng.random((6, 7, 4)) < 0.3 for _ in range(5)]
    masks[0][:] = False  # an empty reference: Dice 1 only where nothing is predicted
    candidates = volume.THRESHOLD_CANDIDATES

    def mean_dice(t):
        d = []
        for p, m in zip(probs, masks):
            pred = p >= t
            denom = pred.sum() + m.sum()
            d.append(1.0 if denom == 0 else 2.0 * (pred & m).sum() / denom)
        return float(np.mean(d))

    scores = [mean_dice(t) for t in candidates]
    threshold, score = volume.choose_threshold_from_terms([volume.dice_terms(p, m) for p, m in zip(probs, masks)])
    assert threshold == float(candidates[int(np.argmax(scores))]) and score == pytest.approx(max(scores))
    assert volume.choose_threshold(probs, masks) == (threshold, score)
