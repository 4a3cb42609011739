"""A fold's Keras callbacks: every epoch committed (islesbench.training.checkpoints), the progress plot,
TensorBoard logs when TensorBoard is installed.

Function-level imports here are keras and matplotlib (islesbench --help stays fast).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from islesbench.atomic import atomic_path
from islesbench.storage import history
from islesbench.storage.run_layout import FoldPaths
from islesbench.training.checkpoints import EpochCommitter

PLOT_INTERVAL_S = 30.0


def make_callbacks(paths: FoldPaths, initial_epoch: int, chief: bool) -> list:
    """The fold's callbacks: the epoch commit (with the progress plot) and, on the chief, TensorBoard."""
    import keras

    class EpochCommit(keras.callbacks.Callback):
        """Per epoch: history and full model committed together (checkpoints), then shown."""

        def __init__(self):
            super().__init__()
            self.committer = EpochCommitter(paths, initial_epoch)
            self.plotted_at = -float("inf")

        def on_epoch_end(self, epoch, logs=None):
            done = epoch + 1
            if not chief:
                # Every worker must save (collective reads); only the chief keeps the file.
                with tempfile.TemporaryDirectory() as tmpdir:
                    self.model.save(os.path.join(tmpdir, "worker.keras"))
                return
            self.committer.commit(self.model, epoch, logs)
            # Redrawn at most every PLOT_INTERVAL_S and after the last epoch: drawing costs ~0.1 s, as much
            # as a whole epoch's commit, and a grid of short epochs draws hundreds of times.
            last = done >= (self.params or {}).get("epochs", done)
            if last or time.monotonic() - self.plotted_at >= PLOT_INTERVAL_S:
                try:
                    plot_progress(self.committer.rows, paths.progress_png)
                except Exception as exc:  # a plot must never stop training
                    print(f"warning: progress plot not written: {exc}", file=sys.stderr)
                self.plotted_at = time.monotonic()

    return [EpochCommit()] + (tensorboard_callbacks(paths.tensorboard_dir) if chief else [])


def tensorboard_available() -> bool:
    """TensorBoard logs need the tensorboard package, which TensorFlow does not require."""
    return importlib.util.find_spec("tensorboard") is not None


def tensorboard_callbacks(log_dir) -> list:
    """[the TensorBoard callback writing to `log_dir`] where TensorBoard is installed, else []."""
    if not tensorboard_available():
        return []
    import keras

    return [keras.callbacks.TensorBoard(str(log_dir), write_graph=False)]


def plot_progress(rows: list, path: Path) -> None:
    """progress.png: training/validation loss and validation Dice by epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r[history.EPOCH] + 1 for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in ((history.LOSS, "train loss"), (history.VAL_LOSS, "val loss")):
        if any(key in r for r in rows):
            ax[0].plot(epochs, [r.get(key, np.nan) for r in rows], marker="o", label=label)
    ax[0].set_xlabel("epoch"), ax[0].set_ylabel("loss"), ax[0].legend(), ax[0].grid(alpha=0.3)
    # Per-sample Dice of the training batches and of the validation cases' slices (2-D) or slabs (3-D)
    # at 0.5; the fold's reported Dice comes later, on whole volumes in their own geometry.
    columns = {k for r in rows for k in r}
    for validation, label in ((False, "train Dice (batches)"), (True, "val Dice (at 0.5)")):
        key = history.dice_column(columns, validation)
        if key is not None:
            ax[1].plot(epochs, [r.get(key, np.nan) for r in rows], marker="o", label=label)
    ax[1].set_xlabel("epoch"), ax[1].set_ylabel("Dice"), ax[1].set_ylim(0, 1), ax[1].legend(), ax[1].grid(alpha=0.3)
    fig.suptitle(path.parent.parent.name + " / " + path.parent.name)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
