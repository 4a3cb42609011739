"""A fold's whole-volume validation: threshold chosen on the fold's training cases, then masks, probability
maps and metrics of its validation cases (islesbench.inference.validation_output writes them).

The validation runs on `checkpoint_last` (the best-on-validation checkpoint would make the reported
numbers optimistic) and the probability threshold is chosen on the fold's training cases only.
"""

from __future__ import annotations

from islesbench import models
from islesbench.atomic import write_json_atomic
from islesbench.config import ExperimentConfig
from islesbench.inference import volume
from islesbench.inference.validation_output import reference_mask, write_validation
from islesbench.models.saving import load_checkpoint
from islesbench.storage import records
from islesbench.storage.manifest import PreparedData, case_geometry
from islesbench.storage.run_layout import FoldPaths


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
        prob = volume.grid_to_original(volume.predict_grid(model, vol["image"], is_3d),
                                          case_geometry(entry))
        return prob, entry

    # One case at a time: whole-brain probability maps of every training case would not fit together.
    terms = [volume.dice_terms(case_probability(case_id)[0], reference_mask(prepared.cases[case_id]))
             for case_id in train_ids]
    threshold, train_dice = volume.choose_threshold_from_terms(terms)
    write_json_atomic(paths.threshold_json, {"threshold": threshold, "train_mean_dice": train_dice,
                                             "chosen_on": "training cases of this fold"})
    print(f"threshold {threshold:.2f} (mean Dice {train_dice:.3f} on {len(train_ids)} training cases)", flush=True)
    return write_validation(paths, prepared, val_ids, lambda c: case_probability(c)[0], threshold)
