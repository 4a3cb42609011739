"""A fold's validation output, written the same way for a trained fold, the rCBF rule and an ensemble:
per validation case the binary mask and the probability map (NIfTI, the case's original geometry), its
metrics against the reference, and the fold's metric files (islesbench.storage.run_layout's layout).
"""

from __future__ import annotations

import numpy as np

from islesbench.errors import CaseError
from islesbench.evaluation.aggregate import summarize
from islesbench.evaluation.files import write_case_metrics
from islesbench.evaluation.metrics import case_metrics
from islesbench.imaging.nifti_io import mask_fault, read_nifti
from islesbench.imaging.nifti_write import save_nifti
from islesbench.storage.manifest import PreparedData
from islesbench.storage.run_layout import FoldPaths


def reference_mask(entry: dict) -> np.ndarray:
    """The raw reference mask (X, Y, Z) bool of a prepared case, from its source OT file."""
    data, _, _ = read_nifti(entry["source"]["OT"])
    fault = mask_fault(data)  # checked by prepare too; the file may have changed since
    if fault:
        raise CaseError(entry.get("case_id", "?"), entry["source"]["OT"], fault)
    return data > 0


def write_validation(paths: FoldPaths, prepared: PreparedData, val_ids, probability_of, threshold: float) -> dict:
    """Write masks, probability maps, per-case metrics and summary for the validation cases."""
    rows = []
    for i, case_id in enumerate(val_ids, 1):
        entry = prepared.cases[case_id]
        prob = probability_of(case_id)
        pred = prob >= threshold
        affine = np.asarray(entry["affine"])
        save_nifti(paths.probability_path(case_id), prob.astype(np.float32), affine, entry["spacing"])
        save_nifti(paths.mask_path(case_id), pred.astype(np.uint8), affine, entry["spacing"], dtype=np.uint8)
        row = {"case": case_id, **case_metrics(pred, reference_mask(entry), tuple(entry["spacing"]))}
        rows.append(row)
        print(f"[validate {i}/{len(val_ids)}] {case_id}: Dice {row['dice']:.3f}", flush=True)
    write_case_metrics(rows, paths.metrics_csv, paths.summary_json, extra_summary={"threshold": threshold})
    return summarize(rows)
