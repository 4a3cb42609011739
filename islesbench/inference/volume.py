"""Whole-volume prediction: normalised grid volume → model → probability map in the case's own geometry.

2-D models see every slice (resized to the model's input size); 3-D models see the whole slab at once
(the V-Net pads and crops depth itself). Probabilities are resized back to the prepared grid, then
`preprocessing.from_grid` undoes the in-plane resampling.
"""

from __future__ import annotations

import numpy as np

from islesbench.imaging import preprocessing

# Keras imported inside functions only, so that `islesbench --help` and start-up stay fast.


def model_input_size(model) -> int | None:
    """The fixed in-plane side a model expects (None when it accepts any)."""
    shape = model.inputs[0].shape
    return shape[-2] if shape[-2] is not None else None


def predict_grid(model, image_zhwc: np.ndarray, is_3d: bool, batch_size: int = 8) -> np.ndarray:
    """Probabilities (Z, G, G) for a normalised grid volume (Z, G, G, C)."""
    import keras

    z, g = image_zhwc.shape[0], image_zhwc.shape[1]
    size = model_input_size(model) or g
    x = image_zhwc
    if size != g:
        x = keras.ops.convert_to_numpy(keras.ops.image.resize(x, (size, size), interpolation="bilinear"))
    if is_3d:
        out = model.predict_on_batch(x[None])
        out = out[0] if not isinstance(out, (list, tuple, dict)) else _main_output(out)[0]
    else:
        parts = []
        for start in range(0, z, batch_size):
            chunk = x[start:start + batch_size]
            n = chunk.shape[0]
            if n < batch_size:
                # Every call gets the same batch shape: each new shape retraces the whole network, which
                # for PSPNet cost seconds per case (slab depths vary 2-22). Inference-mode BN keeps the
                # zero padding from touching the real slices.
                chunk = np.concatenate([chunk, np.zeros((batch_size - n, *chunk.shape[1:]), chunk.dtype)])
            o = model.predict_on_batch(chunk)
            parts.append((_main_output(o) if isinstance(o, (list, tuple, dict)) else np.asarray(o))[:n])
        out = np.concatenate(parts, axis=0)
    out = np.asarray(out, np.float32)
    if size != g:
        out = keras.ops.convert_to_numpy(keras.ops.image.resize(out, (g, g), interpolation="bilinear"))
    return np.clip(out[..., 0], 0.0, 1.0)


def _main_output(outputs):
    if isinstance(outputs, dict):
        return np.asarray(outputs["mask"])
    return np.asarray(outputs[0])


def grid_to_original(prob_zgg: np.ndarray, geometry) -> np.ndarray:
    """Probability map (X, Y, Z) in the case's original geometry from a grid map (Z, G, G).

    `geometry` is the case's preprocessing.Sampling (reorientation and slice resampling undone too;
    manifest.case_geometry gives it), or, for an unreoriented slab, its stored shape.
    """
    prob = np.moveaxis(prob_zgg, 0, 2)
    if isinstance(geometry, preprocessing.Sampling):
        return np.clip(preprocessing.from_target(prob, geometry), 0.0, 1.0).astype(np.float32)
    out = preprocessing.from_grid(prob, tuple(geometry[:2]), order=1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def predict_case_arrays(models, volumes: dict, modalities, grid: int, is_3d: bool, params=None) -> np.ndarray:
    """Mean probability (X, Y, Z) of one or more models on a raw case's volumes."""
    if params is None:
        params = preprocessing.normalization_params(volumes, modalities)
    image, _ = preprocessing.case_to_records_arrays(volumes, None, modalities, params, grid)
    shape = next(iter(volumes.values())).shape
    probs = [grid_to_original(predict_grid(m, image, is_3d), shape) for m in models]
    return np.mean(probs, axis=0).astype(np.float32)


THRESHOLD_CANDIDATES = np.round(np.arange(0.1, 0.91, 0.05), 2)


def dice_terms(probability: np.ndarray, mask: np.ndarray, candidates=None) -> np.ndarray:
    """Per candidate threshold, (|pred & mask|, |pred| + |mask|) of one case: (n_candidates, 2) int64.

    What choosing a threshold needs from a case, so a fold's training cases (whole-brain volumes at
    their original resolution) need not be held in memory together.
    """
    candidates = THRESHOLD_CANDIDATES if candidates is None else candidates
    mask = np.asarray(mask, bool)
    reference = int(mask.sum())
    lesion = probability[mask]
    return np.array([(int((lesion >= t).sum()), int((probability >= t).sum()) + reference) for t in candidates],
                    np.int64)


def choose_threshold_from_terms(terms: list, candidates=None) -> tuple[float, float]:
    """The candidate threshold with the best mean Dice over cases, from each case's `dice_terms`."""
    candidates = THRESHOLD_CANDIDATES if candidates is None else candidates
    best = (0.5, -1.0)
    for k, t in enumerate(candidates):
        dices = [1.0 if int(c[k, 1]) == 0 else 2.0 * int(c[k, 0]) / int(c[k, 1]) for c in terms]
        score = float(np.mean(dices)) if dices else 0.0
        if score > best[1] + 1e-9:
            best = (float(t), score)
    return best


def choose_threshold(probabilities: list, masks: list, candidates=None) -> tuple[float, float]:
    """The probability threshold with the best mean Dice over the given (training) cases."""
    return choose_threshold_from_terms([dice_terms(p, m, candidates) for p, m in zip(probabilities, masks)],
                                       candidates)
