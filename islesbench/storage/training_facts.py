"""What a fold's training actually was, beside its config.json (`fold_<k>/training.json`,
islesbench.storage.run_layout).

The configuration says what was asked; these facts are what it resolved to when the fold trained: steps per
epoch (and what set them), total optimizer steps, replicas, the global batch, and what the first drawn
training batches held (samples, axial slices and voxels with lesion). The report's pair check compares
them (reports/claims.py), so two arms that differ in compute or in lesion exposure are not called matched.
"""

from __future__ import annotations

from pathlib import Path

from islesbench.atomic import write_json_atomic
from islesbench.config import read_json_file

# How train.steps_per_epoch was resolved (the `steps_basis` fact).
CONFIGURED, FOLD_CASES, TRAINING_CASES = "configured", "one pass over the fold's training cases", \
    "one pass over the cases trained on"


def write_training_facts(path, facts: dict) -> None:
    """Write a fold's training facts (run_layout.FoldPaths.training_facts), atomically."""
    write_json_atomic(path, facts)


def read_training_facts(path) -> dict | None:
    """A fold's training facts, or None for a fold trained before they were recorded (or not trained)."""
    path = Path(path)
    if not path.is_file():
        return None
    facts = read_json_file(path, "training facts")
    return facts if isinstance(facts, dict) else None
