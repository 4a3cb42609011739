"""islesbench.evaluation.lesions against the ISLES'22 evaluation code's rules (re-run with cc3d, the
connected-components library it uses) and against panoptica (the library of the ISLES'24 script)."""

import numpy as np
import pytest
from scipy import ndimage

from islesbench.evaluation.lesions import lesion_detection

cc3d = pytest.importorskip("cc3d")
panoptica = pytest.importorskip("panoptica")


def isles22_counts(ref: np.ndarray, pred: np.ndarray) -> dict:
    """The ISLES'22 rules as their code loops over components: TP/FN per reference lesion, FP per
    predicted component, F1 with empty_value 1, |#reference lesions - #predicted components|."""
    tp = fp = fn = 0
    intersection = ref & pred
    labels, n_ref = cc3d.connected_components(ref, connectivity=26, return_N=True)
    for label in range(1, n_ref + 1):
        if np.logical_and(labels == label, intersection).any():
            tp += 1
        else:
            fn += 1
    labels, n_pred = cc3d.connected_components(pred, connectivity=26, return_N=True)
    for label in range(1, n_pred + 1):
        if not np.logical_and(labels == label, ref).any():
            fp += 1
    f1 = 1.0 if tp + fp + fn == 0 else tp / (tp + (fp + fn) / 2)
    return {"lesion_tp": tp, "lesion_fp": fp, "lesion_fn": fn, "lesion_f1": f1, "lesion_count_diff": abs(n_ref - n_pred)}


def panoptica_f1(ref: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> float:
    """The ISLES'24 script's lesion F1: panoptica's recognition quality, 1 when both are empty; matched at
    IoU >= 0.5 as during the 2024 challenge (isles24 34c6637), at 0.2 as since 2025-12-16 (94b3486)."""
    from panoptica import (ConnectedComponentsInstanceApproximator, InputType, NaiveThresholdMatching,
                           Panoptica_Evaluator)

    evaluator = Panoptica_Evaluator(
        expected_input=InputType.SEMANTIC,
        instance_approximator=ConnectedComponentsInstanceApproximator(),
        instance_matcher=NaiveThresholdMatching(matching_threshold=threshold),
    )
    result = evaluator.evaluate(pred.astype(np.int32), ref.astype(np.int32), verbose=False)["ungrouped"]
    if result.n_ref_instances == 0 and result.n_pred_instances == 0:
        return 1.0
    return float(result.rq)


def random_masks(seed: int):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(16, 32)), int(rng.integers(16, 32)), int(rng.integers(1, 8)))

    def blobs(level):
        return ndimage.gaussian_filter(rng.random(shape), (1.2, 1.2, 0.6)) > level

    ref = blobs(rng.uniform(0.54, 0.6))
    if seed % 2:  # lesions mostly kept (IoU >= 0.5 matches), some dropped, a few false positives
        labels, n = ndimage.label(ref, np.ones((3, 3, 3)))
        kept = np.isin(labels, 1 + np.flatnonzero(rng.random(n) < 0.7))
        pred = (kept & (rng.random(shape) < rng.uniform(0.7, 1.0))) | (blobs(0.6) & ~ndimage.binary_dilation(ref, iterations=2))
    else:  # grown, holed predictions that merge neighbouring lesions
        pred = (ndimage.binary_dilation(ref) & (rng.random(shape) < 0.7)) | blobs(rng.uniform(0.56, 0.62))
    if seed % 7 == 0:
        pred[:] = False
    if seed % 11 == 0:
        ref[:] = False
    return pred, ref


@pytest.mark.parametrize("seed", range(30))
def test_isles22_rules_and_panoptica_on_random_lesions(seed):
    pred, ref = random_masks(seed)
    ours = lesion_detection(pred, ref)
    assert {k: ours[k] for k in isles22_counts(ref, pred)} == isles22_counts(ref, pred)
    assert ours["lesion_f1_iou50"] == pytest.approx(panoptica_f1(ref, pred), abs=1e-12)
    assert ours["lesion_f1_iou20"] == pytest.approx(panoptica_f1(ref, pred, 0.2), abs=1e-12)


def _two_lesions():
    ref = np.zeros((20, 20, 3), bool)
    ref[2:6, 2:6, 1] = True
    ref[12:16, 12:16, 1] = True
    return ref


def _box(x, y, z=1):
    return (slice(*x), slice(*y), slice(z, z + 1))


@pytest.mark.parametrize(
    "boxes, isles22_f1, iou50_f1",
    [
        # a prediction grazing one lesion (IoU 1/16): found for ISLES'22, not matched for panoptica
        ([_box((5, 6), (5, 6))], 2 / 3, 0.0),
        # one component bridging both lesions: both found for ISLES'22, IoU < 0.5 with each for panoptica
        ([_box((2, 16), (5, 13))], 1.0, 0.0),
        # one lesion split into two components (IoU 0.5 and 0.25), the other missed: panoptica matches the
        # larger part and counts the smaller as a false positive; ISLES'22 finds one lesion and no FP
        ([_box((2, 4), (2, 6)), _box((5, 6), (2, 6))], 2 / 3, 0.5),
    ],
    ids=["graze", "merge", "split"],
)
def test_where_isles22_and_panoptica_differ(boxes, isles22_f1, iou50_f1):
    ref = _two_lesions()
    pred = np.zeros_like(ref)
    for box in boxes:
        pred[box] = True
    ours = lesion_detection(pred, ref)
    assert ours["lesion_f1"] == pytest.approx(isles22_counts(ref, pred)["lesion_f1"]) == pytest.approx(isles22_f1)
    assert ours["lesion_f1_iou50"] == pytest.approx(panoptica_f1(ref, pred)) == pytest.approx(iou50_f1)


@pytest.mark.parametrize(
    "box, iou50_f1, iou20_f1",
    [
        # the lesion (4x4 voxels) half covered: IoU 0.5, a match under both rules
        (_box((2, 4), (2, 6)), 2 / 3, 2 / 3),
        # a quarter covered (IoU 0.25): a miss and a false positive in 2024, a match since 2025-12-16
        (_box((2, 3), (2, 6)), 0.0, 2 / 3),
        # one voxel column (IoU 0.0625): a miss under both
        (_box((2, 3), (2, 3)), 0.0, 0.0),
    ],
    ids=["iou0.5", "iou0.25", "iou0.06"],
)
def test_the_two_isles24_thresholds(box, iou50_f1, iou20_f1):
    """ISLES'24's script matched at IoU >= 0.5 in the 2024 challenge and at >= 0.2 since 2025-12-16."""
    ref = _two_lesions()
    pred = np.zeros_like(ref)
    pred[box] = True
    ours = lesion_detection(pred, ref)
    assert ours["lesion_f1_iou50"] == pytest.approx(panoptica_f1(ref, pred, 0.5)) == pytest.approx(iou50_f1)
    assert ours["lesion_f1_iou20"] == pytest.approx(panoptica_f1(ref, pred, 0.2)) == pytest.approx(iou20_f1)
