"""Lesion-wise detection metrics of the ISLES'22 and ISLES'24 evaluations.

Lesions are 26-connected components (the full 3×3×3 neighbourhood; 8-connected in 2-D).

ISLES'22 (``compute_lesion_f1_score``, ``compute_absolute_lesion_difference`` of its evaluation code):

- a reference lesion touched by any predicted voxel is a true positive, otherwise a false negative;
  a predicted component touching no reference voxel is a false positive. A predicted component that
  touches two reference lesions makes both true positives, and two predicted components on one
  reference lesion make one true positive and no false positive.
- ``lesion_f1`` = TP / (TP + (FP + FN) / 2); 1 when both masks are empty.
- ``lesion_count_diff`` = |number of reference lesions − number of predicted components|.

ISLES'24 (the organisers' evaluation, github.com/ezequieldlrosa/isles24, ``utils/eval_utils.py``,
``compute_dice_f1_instance_difference``: panoptica with ``ConnectedComponentsInstanceApproximator`` and
``NaiveThresholdMatching``). The matching threshold changed after the challenge, so there are two F1s,
each named by its threshold:

- ``lesion_f1_iou50``: matches at IoU >= 0.5, ``NaiveThresholdMatching()`` with panoptica's default, as
  the script stood during the 2024 challenge (commit 34c6637, 2024-08-07) -- the version the challenge
  was scored with;
- ``lesion_f1_iou20``: matches at IoU >= 0.2, ``NaiveThresholdMatching(matching_threshold=0.2)``, the
  script's rule since commit 94b3486 (2025-12-16, its head when this was written).

In both, a reference lesion and a predicted component match one to one, pairs taken in decreasing IoU
while it is at least the threshold; matched pairs are true positives, unmatched reference lesions
false negatives, unmatched predicted components false positives; F1 = panoptica's recognition quality
TP / (TP + (FP + FN) / 2), 1 when both masks are empty (the script's ``empty_value``; panoptica itself
returns NaN there).

The same script's Dice is panoptica's ``global_bin_dsc``. In panoptica <= 1.0.1 (1.0.1 was current
during the challenge, 2024-08-09; fixed in 1.1.0, 2024-08-28) it is 0 whenever no lesion pair matches
(TP = 0), however much the masks overlap, so a challenge-time Dice of 0 may hide overlap below the
matching threshold; islesbench's ``dice`` is the plain global Dice (panoptica >= 1.1.0's).

So the ISLES'22 F1 and the IoU F1s differ whenever a prediction touches a lesion with IoU below the
threshold, splits one lesion or merges two, and the two IoU F1s differ for matches with 0.2 <= IoU < 0.5;
``tests/evaluation/test_metrics_lesions.py`` shows each case against panoptica.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# The ISLES'24 script's matching thresholds: during the 2024 challenge (34c6637) and since 2025-12-16 (94b3486).
IOU_MATCH_THRESHOLD = 0.5
IOU_MATCH_THRESHOLD_CURRENT = 0.2


def label_lesions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The lesions of a mask: its 26-connected components (8-connected in 2-D).

    Args:
        mask: (X, Y, Z) bool mask (any number of axes).

    Returns:
        (labels, count): an int32 array of `mask`'s shape, 0 for background and 1..count per lesion,
        and the number of lesions.
    """
    return ndimage.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))


def _f1(tp: int, fp: int, fn: int) -> float:
    return 1.0 if tp + fp + fn == 0 else tp / (tp + (fp + fn) / 2.0)


def lesion_detection(pred: np.ndarray, ref: np.ndarray) -> dict:
    """Lesion-wise detection of one case, as ISLES'22 and ISLES'24 count it (see the module docstring).

    Args:
        pred: (X, Y, Z) bool mask, the prediction.
        ref: (X, Y, Z) bool mask of the same shape, the reference.

    Returns:
        {"lesion_tp", "lesion_fp", "lesion_fn", "lesion_count_diff"} as int counts of lesions, and
        {"lesion_f1" (ISLES'22), "lesion_f1_iou50" (ISLES'24 as scored in 2024, matches at IoU >= 0.5),
        "lesion_f1_iou20" (ISLES'24's script since 2025-12-16, IoU >= 0.2)} as floats in [0, 1].
    """
    ref_labels, n_ref = label_lesions(ref)
    pred_labels, n_pred = label_lesions(pred)
    tp = int(np.count_nonzero(np.unique(ref_labels[pred])))  # label 0 is background
    fp = n_pred - int(np.count_nonzero(np.unique(pred_labels[ref])))
    fn = n_ref - tp
    return {
        "lesion_tp": tp,
        "lesion_fp": int(fp),
        "lesion_fn": int(fn),
        "lesion_f1": _f1(tp, fp, fn),
        "lesion_count_diff": abs(n_ref - n_pred),
        "lesion_f1_iou50": _f1_iou_matched(ref_labels, n_ref, pred_labels, n_pred, IOU_MATCH_THRESHOLD),
        "lesion_f1_iou20": _f1_iou_matched(ref_labels, n_ref, pred_labels, n_pred, IOU_MATCH_THRESHOLD_CURRENT),
    }


def _f1_iou_matched(ref_labels, n_ref: int, pred_labels, n_pred: int, threshold: float) -> float:
    """panoptica's recognition quality with one-to-one matching at IoU >= threshold."""
    if n_ref == 0 or n_pred == 0:
        return _f1(0, n_pred, n_ref)
    both = (ref_labels > 0) & (pred_labels > 0)
    pair_ids = ref_labels[both].astype(np.int64) * (n_pred + 1) + pred_labels[both]
    pairs, overlap = np.unique(pair_ids, return_counts=True)
    ref_ids, pred_ids = pairs // (n_pred + 1), pairs % (n_pred + 1)
    ref_sizes = np.bincount(ref_labels.ravel(), minlength=n_ref + 1)
    pred_sizes = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)
    iou = overlap / (ref_sizes[ref_ids] + pred_sizes[pred_ids] - overlap)
    matched_ref, matched_pred = set(), set()
    for k in np.argsort(-iou, kind="stable"):
        if iou[k] < threshold:
            break
        if ref_ids[k] not in matched_ref and pred_ids[k] not in matched_pred:
            matched_ref.add(ref_ids[k])
            matched_pred.add(pred_ids[k])
    tp = len(matched_ref)
    return _f1(tp, n_pred - tp, n_ref - tp)
