"""Resume at epoch granularity: the epoch commit, its recovery after a kill, and full-model checkpoints.

After every epoch one commit makes the epoch's checkpoint, its history row and the `checkpoint_last`
link visible together. The history with the new row goes to `backup/epoch_NNNN.history.csv`, then the
full model (weights and optimizer state) to `backup/epoch_NNNN.keras`, both through temporary names; the
rename of the .keras file is the commit. Only then are `history.csv` replaced by the epoch's history,
`checkpoint_last.keras` (and `checkpoint_best.keras` when validation Dice improves) hard-linked to the
epoch file, and older epoch files deleted. A kill at any moment leaves either the previous epoch's commit
or this one; every resume first rolls the newest commit forward (history.csv, links), so a resumed run
has exactly one history row per completed epoch. A fold's training and a pretraining both commit this way.

Function-level imports here are keras and the modules that import it (islesbench --help stays fast).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import numpy as np

from islesbench.atomic import atomic_path, write_json_atomic
from islesbench.storage import history
from islesbench.storage.run_layout import FoldPaths

EPOCH_FILE = re.compile(r"^epoch_(\d{4,})\.keras$")
EPOCH_HISTORY = re.compile(r"^epoch_(\d{4,})\.(history\.csv|rng\.json)$")


def latest_epoch_checkpoint(backup_dir: Path):
    """(completed epochs, path) of the newest complete epoch file, or (0, None)."""
    best = (0, None)
    if backup_dir.is_dir():
        for p in backup_dir.iterdir():
            m = EPOCH_FILE.match(p.name)
            if m and int(m.group(1)) > best[0]:
                best = (int(m.group(1)), p)
    return best


def epoch_history_file(backup_dir: Path, epochs_done: int) -> Path:
    """The history (one row per epoch up to `epochs_done`) committed with that epoch's checkpoint."""
    return Path(backup_dir) / f"epoch_{epochs_done:04d}.history.csv"


def epoch_rng_file(backup_dir: Path, epochs_done: int) -> Path:
    """The random-generator states (dropout) committed with that epoch's checkpoint."""
    return Path(backup_dir) / f"epoch_{epochs_done:04d}.rng.json"


def _seed_generators(model) -> list:
    """((layer path, index), SeedGenerator) of every layer: a .keras file does not keep their states
    (Keras saves a layer's own variables only), so a resumed run's dropout masks would restart."""
    found = []
    for layer in model._flatten_layers(include_self=True):
        for i, generator in enumerate(getattr(layer, "_seed_generators", None) or []):
            found.append(((getattr(layer, "path", layer.name), i), generator))
    return found


def seed_generator_states(model) -> list:
    """[layer path, index, state] of every seed generator, JSON-ready."""
    return [[key[0], key[1], np.asarray(g.state.numpy()).tolist()] for key, g in _seed_generators(model)]


def restore_seed_generator_states(model, states: list) -> None:
    """Put back what `seed_generator_states` recorded (generators it does not name are left alone)."""
    recorded = {(path, int(i)): state for path, i, state in states}
    for key, generator in _seed_generators(model):
        if key in recorded:
            generator.state.assign(np.asarray(recorded[key], dtype=generator.state.dtype))


def recover_last_epoch(paths: FoldPaths) -> int:
    """Roll the newest committed epoch forward (history.csv, checkpoint_last/best links, old files
    pruned) after a kill; return the number of completed epochs."""
    done, latest = latest_epoch_checkpoint(paths.backup_dir)
    if latest is None:
        return 0
    committed = epoch_history_file(paths.backup_dir, done)
    if committed.is_file():
        rows = history.read_rows(committed, before_epoch=done)
        _publish_epoch(paths, latest, rows, done)
    else:  # a fold checkpointed before histories were committed with the epoch
        rows = history.read_rows(paths.history_csv, before_epoch=done)
        history.write_rows(paths.history_csv, rows)
    return done


def _publish_epoch(paths: FoldPaths, epoch_file: Path, rows: list, done: int) -> None:
    """Make a committed epoch visible: history.csv, checkpoint_last (and best), older files pruned."""
    history.write_rows(paths.history_csv, rows)
    _link_atomic(epoch_file, paths.checkpoint_last)
    scores = [(history.dice_value(r, validation=True), r[history.EPOCH]) for r in rows
              if history.dice_value(r, validation=True) is not None]
    if scores and max(scores, key=lambda t: (t[0], -t[1]))[1] == done - 1:
        _link_atomic(epoch_file, paths.checkpoint_best)  # the first epoch with the best score so far
    for p in paths.backup_dir.iterdir():
        m = EPOCH_FILE.match(p.name) or EPOCH_HISTORY.match(p.name)
        if m and int(m.group(1)) != done:  # older commits, or a history whose checkpoint never landed
            p.unlink()


def commit_epoch(paths: FoldPaths, model, rows: list, done: int) -> None:
    """Commit epoch `done` (see the module docstring): its history, random-generator states and full model
    in backup/, then make it visible. `rows` is the history up to and including that epoch."""
    paths.backup_dir.mkdir(parents=True, exist_ok=True)
    history.write_rows(epoch_history_file(paths.backup_dir, done), rows)
    write_json_atomic(epoch_rng_file(paths.backup_dir, done), seed_generator_states(model))
    target = paths.backup_dir / f"epoch_{done:04d}.keras"
    with atomic_path(target) as tmp:
        model.save(str(tmp))
    # committed: from here on a kill is rolled forward by recover_last_epoch
    _publish_epoch(paths, target, rows, done)


def _link_atomic(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


class EpochCommitter:
    """The history of a resumable fit and the commit of each of its epochs (a fold's or a pretraining's
    Keras callback calls `commit` at every epoch end)."""

    def __init__(self, paths: FoldPaths, initial_epoch: int):
        self.paths = paths
        self.rows = history.read_rows(paths.history_csv, before_epoch=initial_epoch)

    def commit(self, model, epoch: int, logs=None, **columns) -> dict:
        """Add epoch `epoch`'s row (its logs, the time and `columns`), commit it with the model; the row."""
        row = {history.EPOCH: epoch, **{k: float(v) for k, v in (logs or {}).items()}, history.TIME: time.time(),
               **columns}
        self.rows = [r for r in self.rows if r[history.EPOCH] < epoch] + [row]
        commit_epoch(self.paths, model, self.rows, epoch + 1)
        return row
