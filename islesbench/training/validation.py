"""A fold's whole-volume validation: threshold chosen on the fold's training cases, masks, probability
maps and metrics of its validation cases written as NIfTI and metric files.

The validation runs on `checkpoint_last` (the best-on-validation checkpoint would make the reported
numbers optimistic) and the probability threshold is chosen on the fold's training cases only.
"""

from __future__ import annotations

import numpy as np

from islesbench import models
from islesbench.atomic import write_json_atomic
from islesbench.config import ExperimentConfig
from islesbench.evaluation.aggregate import summarize
from islesbench.evaluation.files import write_case_metrics
from islesbench.evaluation.metrics import case_metrics
from islesbench.inference import volume as inference
from islesbench.layouts import read_nifti, save_nifti
from islesbench.storage import records
from islesbench.storage.manifest import PreparedData, case_geometry
from islesbench.storage.run_layout import FoldPaths
from islesbench.training.checkpoints import load_checkpoint


def validate_fold(config: ExperimentConfig, prepared: PreparedData, train_ids, val_ids, paths: FoldPaths,
                  model=None) -> dict:
    """Whole-volume validation with checkpoint_last: threshold chosen on training cases, metrics on val.

    `model` is the model fit_fold just trained, which holds checkpoint_last's weights (its predict step is
    traced already); without it checkpoint_last is loaded.
    """
    model = model if model is not None else load_checkpoint(paths.checkpoint_last)
    is_3d = models.is_3d(config.model.arch)

    def case_probability(case_id):
        vol = records.read_volume_record(prepared.paths.volume_file(case_id))
        entry = prepared.cases[case_id]
        prob = inference.grid_to_original(inference.predict_grid(model, vol["image"], is_3d),
                                          case_geometry(entry))
        return prob, entry

    # One case at a time: whole-brain probability maps of every training case would not fit together.
    terms = [inference.dice_terms(case_probability(case_id)[0], reference_mask(prepared.cases[case_id]))
             for case_id in train_ids]
    threshold, train_dice = inference.choose_threshold_from_terms(terms)
    write_json_atomic(paths.threshold_json, {"threshold": threshold, "train_mean_dice": train_dice,
                                             "chosen_on": "training cases of this fold"})
    print(f"threshold {threshold:.2f} (mean Dice {train_dice:.3f} on {len(train_ids)} training cases)", flush=True)
    return write_validation(paths, prepared, val_ids, lambda c: case_probability(c)[0], threshold)


def reference_mask(entry: dict) -> np.ndarray:
    """The raw reference mask (X, Y, Z) bool of a prepared case, from its source OT file."""
    data, _, _ = read_nifti(entry["source"]["OT"])
    return data > 0  # validated earlier: {0,1}, {0,255} or {0,k} masks


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
