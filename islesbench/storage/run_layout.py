"""The results layout on disk, which every stage writes and the reports read.

    RUNS/<config-name>/config.json              resolved ExperimentConfig of the run
    RUNS/<config-name>/patients.json            the patient map the run trained with (case -> patient), kept
                                                with the run so the report's unit survives a moved folder
    RUNS/<config-name>/fold_<k>/config.json     the same, with the fold number and the provenance of the process
                                                that trained the fold (islesbench.storage.provenance)
                               training.json    what the training resolved to (storage/training_facts.py)
                               history.csv      one row per epoch (Keras CSVLogger)
                               progress.png     loss and validation Dice per epoch (redrawn every 30 s at most, and at the end)
                               checkpoint_best.keras, checkpoint_last.keras
                               backup/          BackupAndRestore state of an unfinished run
                               logs/            TensorBoard
                               threshold.json   probability threshold chosen on the training cases
                               validation/<case>.nii.gz        binary mask, original geometry
                               validation/<case>_prob.nii.gz   probability map, original geometry
                               validation/metrics.csv          per-case metrics (islesbench.evaluation.files)
                               validation/summary.json         aggregate metrics (islesbench.evaluation.files)
                               DONE             written last: the fold is complete
    An ensemble (`islesbench ensemble RUN_DIRS --out RUNS/ensemble-...`) is written in this same layout:
    its fold_<k>/validation/ holds the cases that fold validated, averaged over the member runs.
    So are predictions made elsewhere (`islesbench import`): config.json has "kind": "external" and no
    training configuration, each fold_<k>/ the imported masks (and probability maps), threshold.json,
    the metrics files and DONE.

No other module builds these paths.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from islesbench.atomic import remove_stale_temporaries, write_json_atomic, write_text_atomic
from islesbench.config import read_json_file
from islesbench.errors import IslesbenchError

DONE_MARKER = "DONE"
PATIENT_MAP = "patients.json"
EXTERNAL_KIND = "external"  # config.json "kind" of predictions made elsewhere (islesbench import)


@dataclass(frozen=True)
class FoldPaths:
    """Every path of one fold's results."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def training_facts(self) -> Path:
        return self.root / "training.json"

    @property
    def history_csv(self) -> Path:
        return self.root / "history.csv"

    @property
    def progress_png(self) -> Path:
        return self.root / "progress.png"

    @property
    def checkpoint_best(self) -> Path:
        return self.root / "checkpoint_best.keras"

    @property
    def checkpoint_last(self) -> Path:
        return self.root / "checkpoint_last.keras"

    @property
    def backup_dir(self) -> Path:
        return self.root / "backup"

    @property
    def tensorboard_dir(self) -> Path:
        return self.root / "logs"

    @property
    def threshold_json(self) -> Path:
        return self.root / "threshold.json"

    @property
    def validation_dir(self) -> Path:
        return self.root / "validation"

    @property
    def metrics_csv(self) -> Path:
        return self.validation_dir / "metrics.csv"

    @property
    def summary_json(self) -> Path:
        return self.validation_dir / "summary.json"

    @property
    def done_marker(self) -> Path:
        return self.root / DONE_MARKER

    def mask_path(self, case_id: str) -> Path:
        return self.validation_dir / f"{case_id}.nii.gz"

    def probability_path(self, case_id: str) -> Path:
        return self.validation_dir / f"{case_id}_prob.nii.gz"

    def is_done(self) -> bool:
        return self.done_marker.exists()


def run_dir(runs_root, config_name: str) -> Path:
    """The folder of one configuration's run."""
    return Path(runs_root) / config_name


def fold_paths(runs_root, config_name: str, fold: int) -> FoldPaths:
    """The paths of fold `fold` of configuration `config_name`."""
    return FoldPaths(run_dir(runs_root, config_name) / f"fold_{fold}")


def list_runs(runs_root) -> list[Path]:
    """Run folders (those with a config.json) under `runs_root`, sorted by name."""
    root = Path(runs_root)
    return sorted(p.parent for p in root.glob("*/config.json"))


def list_folds(run_root) -> list[tuple[int, FoldPaths]]:
    """(fold number, paths) of every fold folder of a run, sorted by fold."""
    folds = []
    for p in Path(run_root).glob("fold_*"):
        suffix = p.name.split("_", 1)[1]
        if p.is_dir() and suffix.isdigit():
            folds.append((int(suffix), FoldPaths(p)))
    return sorted(folds, key=lambda item: item[0])


def read_run_config(run_root) -> dict:
    """The config.json of a run as a dict (IslesbenchError naming the file when missing or damaged)."""
    path = Path(run_root) / "config.json"
    config = read_json_file(path, "run configuration")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise IslesbenchError(f"{path}: not an islesbench run configuration (no `model` object)")
    return config


def patient_map_path(run_root) -> Path:
    """The run's own copy of the patient map."""
    return Path(run_root) / PATIENT_MAP


def write_patient_map(run_root, record: dict) -> None:
    """Keep the patient map a run trained with (manifest.PreparedData.patient_record()) in its folder."""
    write_json_atomic(patient_map_path(run_root), record)


def read_patient_map(run_root) -> dict | None:
    """case -> patient from the run's patients.json; None when the run has none (IslesbenchError naming a damaged one)."""
    path = patient_map_path(run_root)
    if not path.is_file():
        return None
    data = read_json_file(path, "patient map")
    patients = data.get("patients") if isinstance(data, dict) else None
    if not isinstance(patients, dict) or not all(isinstance(v, str) for v in patients.values()):
        raise IslesbenchError(f"{path}: expected {{\"patients\": {{case: patient}}}}, found {str(data)[:80]}")
    return dict(patients)


def read_threshold(path) -> float:
    """The probability threshold in a fold's threshold.json (0.5 when the file is absent)."""
    if not Path(path).is_file():
        return 0.5
    data = read_json_file(path, "threshold file")
    value = data.get("threshold") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise IslesbenchError(f"{path}: expected {{\"threshold\": a number in [0, 1]}}, found {str(data)[:80]}")
    return float(value)


def is_external(config: dict) -> bool:
    """True for a run folder of imported predictions: no islesbench training configuration to compare."""
    return config.get("kind") == EXTERNAL_KIND


def prepare_fold_dir(paths: FoldPaths) -> None:
    """Create the fold folder and remove temporaries left by a killed run."""
    paths.root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(paths.root)


def finish_fold(paths: FoldPaths) -> None:
    """Mark the fold complete (the DONE marker) and drop the resume state."""
    write_text_atomic(paths.done_marker, time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    if paths.backup_dir.exists():
        shutil.rmtree(paths.backup_dir)
