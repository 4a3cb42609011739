"""The pieces of a cross-validated KerasTuner search for one model/loss pair that `islesbench tune`
(islesbench.commands.tune) puts together: the search's settings record, the distributed role, nested
tuning's inner folds and the closing summary. The tuner itself is islesbench.tuning.cv_tuner, the
search space islesbench.tuning.search_space, the outputs islesbench.tuning.outputs.

The objective is the mean validation Dice over the first K patient-grouped folds of the prepared
splits. Re-running the same command continues the search (KerasTuner state in OUT/keras_tuner; a
larger --max-trials adds trials; an interrupted trial resumes its unfinished fold from its last
epoch). OUT gets best_hparams.json (feed it to `islesbench run --hparams`), trials.csv and trials.png.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from islesbench.atomic import write_json_atomic
from islesbench.config import changed_fields
from islesbench.data_prep.patients import patient_grouped_folds
from islesbench.errors import IslesbenchError

TUNERS = ("random", "bayesian", "hyperband")
SETTINGS_FILE = "tune.json"  # what the search in OUT is: a re-run must match it (max_trials aside)


def distributed_role() -> str:
    """'chief', 'worker' or 'single', from KerasTuner's environment variables."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


def check_settings(out_dir: Path, settings: dict, write: bool) -> None:
    """Refuse to continue a search in OUT made with other settings; record them on first use."""
    path = out_dir / SETTINGS_FILE
    if path.is_file():
        changed = changed_fields(json.loads(path.read_text()), settings)
        if changed:
            raise IslesbenchError(
                f"{out_dir} holds a search with other settings (differs in: {', '.join(changed)}); "
                f"use another --out, or the same settings to continue it (only --max-trials may change)")
    elif write:
        write_json_atomic(path, settings)


def inner_folds(prepared, train_ids, k: int, seed: int) -> list:
    """K patient-grouped, volume-stratified folds of one outer fold's training cases (nested tuning)."""
    patients = prepared.patients()
    patient_of = {c: patients.get(c, c) for c in train_ids}
    lesion = {c: prepared.cases[c]["lesion_volume_ml"] or 0.0 for c in train_ids}
    return patient_grouped_folds(patient_of, lesion, k, seed)


def print_summary(best, rows, out_dir: Path, seconds: float) -> None:
    """The closing lines of a search: trials completed, the best trial and where its files are."""
    done = [r for r in rows if r["status"] == "COMPLETED"]
    print(f"{len(done)}/{len(rows)} trial(s) completed ({seconds:.0f} s this session) -> "
          f"{out_dir / 'trials.csv'}", flush=True)
    if best:
        print(f"best: trial {best['trial_id']}, mean validation Dice {best['score']:.4f} "
              f"(per fold {', '.join(f'{s:.4f}' for s in best['per_fold'])}) -> {out_dir / 'best_hparams.json'}",
              flush=True)
