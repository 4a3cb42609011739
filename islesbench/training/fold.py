"""Training and validating one fold: resumable at epoch granularity, validated on whole volumes.

Resume: after every epoch one commit makes the epoch's checkpoint, its history row and the
`checkpoint_last` link visible together. The history with the new row goes to
`backup/epoch_NNNN.history.csv`, then the full model (weights and optimizer state) to
`backup/epoch_NNNN.keras`, both through temporary names; the rename of the .keras file is the commit.
Only then are `history.csv` replaced by the epoch's history, `checkpoint_last.keras` (and
`checkpoint_best.keras` when validation Dice improves) hard-linked to the epoch file, and older epoch
files deleted. A kill at any moment leaves either the previous epoch's commit or this one; every
resume first rolls the newest commit forward (history.csv, links), so a resumed run has exactly one
history row per completed epoch. The fold's validation runs on `checkpoint_last`
(the best-on-validation checkpoint would make the reported numbers optimistic) and the probability
threshold is chosen on the fold's training cases only.
"""

from __future__ import annotations

import csv
import os
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from islesbench.runtime import distribute
from islesbench.inference import volume as inference
from islesbench import isles
from islesbench.training import model_reuse
from islesbench.storage import records
from islesbench.atomic import atomic_path, remove_stale_temporaries, write_json_atomic, write_text_atomic
from islesbench.config import ExperimentConfig, read_json_file
from islesbench.errors import IslesbenchError
from islesbench.storage.manifest import PreparedData, case_geometry
from islesbench.storage.run_layout import FoldPaths

EPOCH_FILE = re.compile(r"^epoch_(\d{4,})\.keras$")
EPOCH_HISTORY = re.compile(r"^epoch_(\d{4,})\.(history\.csv|rng\.json)$")
PLOT_INTERVAL_S = 30.0


def latest_epoch_checkpoint(backup_dir: Path):
    """(completed epochs, path) of the newest complete epoch file, or (0, None)."""
    best = (0, None)
    if backup_dir.is_dir():
        for p in backup_dir.iterdir():
            m = EPOCH_FILE.match(p.name)
            if m and int(m.group(1)) > best[0]:
                best = (int(m.group(1)), p)
    return best


def load_checkpoint(path):
    """Load a full .keras checkpoint; imports the modules that register islesbench's custom objects
    first (a fresh process resuming a fold has not built a model, so they would be unknown).
    A missing or damaged file is one IslesbenchError naming it."""
    import keras

    from islesbench.models import losses
    from islesbench.training import keras_metrics as training_metrics  # noqa: F401  (registration side effects)
    from islesbench.models import pspnet, unet, vnet  # noqa: F401

    path = Path(path)
    if not path.is_file():
        raise IslesbenchError(f"{path}: checkpoint does not exist")
    try:
        return keras.models.load_model(str(path), safe_mode=True)
    except Exception as exc:  # zipfile, h5py, JSON and Keras all raise their own types for a bad file
        text = " ".join(str(exc).split())[:200]
        raise IslesbenchError(f"{path}: unreadable Keras checkpoint ({type(exc).__name__}: {text})") from None


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
        rows = _read_history(committed, before_epoch=done)
        _publish_epoch(paths, latest, rows, done)
    else:  # a fold checkpointed before histories were committed with the epoch
        rows = _read_history(paths.history_csv, before_epoch=done)
        _write_history(paths.history_csv, rows)
    return done


def _val_score(row: dict):
    return row.get("val_dice", row.get("val_mask_dice"))


def _publish_epoch(paths: FoldPaths, epoch_file: Path, rows: list, done: int) -> None:
    """Make a committed epoch visible: history.csv, checkpoint_last (and best), older files pruned."""
    _write_history(paths.history_csv, rows)
    _link_atomic(epoch_file, paths.checkpoint_last)
    scores = [(_val_score(r), r["epoch"]) for r in rows if _val_score(r) is not None]
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
    _write_history(epoch_history_file(paths.backup_dir, done), rows)
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


def build_compiled_model(config: ExperimentConfig, input_channels: int, steps_per_epoch: int):
    """Build and compile the configured model (inside the caller's strategy scope)."""
    from islesbench import models
    from islesbench.runtime import precision

    with precision.policy(config.train.precision):
        # the channels' names: ResNet-50 weights get the caffe-style mapping of each map's window
        model = models.build_from_config(config.model, input_channels, config.data.input_size,
                                         modalities=config.data.modalities)
    compile_model(model, config, steps_per_epoch)
    return model, models.is_3d(config.model.arch)


def cosine_adamw(learning_rate: float, weight_decay: float, total_steps: int, warmup_steps: int = 0):
    """AdamW with cosine decay to 1 % over `total_steps`, after an optional linear warm-up."""
    import keras

    total = max(1, total_steps)
    warmup = min(total - 1, warmup_steps)
    if warmup > 0:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, total - warmup, alpha=0.01, warmup_target=learning_rate, warmup_steps=warmup)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, total, alpha=0.01)
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay)


def make_optimizer(config: ExperimentConfig, steps_per_epoch: int):
    """AdamW with cosine decay over the whole run, after an optional linear warm-up."""
    o = config.optimizer
    return cosine_adamw(o.learning_rate, o.weight_decay, config.train.epochs * steps_per_epoch,
                        o.warmup_epochs * steps_per_epoch)


def compile_model(model, config: ExperimentConfig, steps_per_epoch: int) -> None:
    """Compile with the configured loss (and the auxiliary head's weight), AdamW and the Dice metric."""
    from islesbench.models import losses
    from islesbench.training.keras_metrics import DiceScore

    loss = losses.get_loss(config.loss.name, alpha=config.loss.alpha, gamma=config.loss.gamma)
    if len(model.outputs) > 1:
        names = model.output_names
        model.compile(optimizer=make_optimizer(config, steps_per_epoch),
                      loss={n: loss for n in names},
                      loss_weights={n: (1.0 if n == "mask" else config.model.aux_weight) for n in names},
                      metrics={"mask": [DiceScore(name="dice")]},
                      jit_compile=config.train.jit_compile)
    else:
        model.compile(optimizer=make_optimizer(config, steps_per_epoch), loss=loss,
                      metrics=[DiceScore(name="dice")], jit_compile=config.train.jit_compile)
    # Without a strategy Keras creates the optimizer's variables inside the first traced train step, and a
    # tf.function that creates variables is traced twice: built here, the step is traced once (seconds a fold).
    model.optimizer.build(model.trainable_variables)


def _make_callbacks(paths: FoldPaths, initial_epoch: int, chief: bool):
    import keras

    class EpochCommit(keras.callbacks.Callback):
        """Per epoch: history and full model committed together (see the module docstring), then shown."""

        def __init__(self):
            super().__init__()
            self.rows = _read_history(paths.history_csv, before_epoch=initial_epoch)
            self.plotted_at = -float("inf")

        def on_epoch_end(self, epoch, logs=None):
            done = epoch + 1
            if not chief:
                # Every worker must save (collective reads); only the chief keeps the file.
                with tempfile.TemporaryDirectory() as tmpdir:
                    self.model.save(os.path.join(tmpdir, "worker.keras"))
                return
            row = {"epoch": epoch}
            row.update({k: float(v) for k, v in (logs or {}).items()})
            row["time"] = time.time()
            self.rows = [r for r in self.rows if r["epoch"] < epoch] + [row]
            commit_epoch(paths, self.model, self.rows, done)
            # Redrawn at most every PLOT_INTERVAL_S and after the last epoch: drawing costs ~0.1 s, as much
            # as a whole epoch's commit, and a grid of short epochs draws hundreds of times.
            last = done >= (self.params or {}).get("epochs", done)
            if last or time.monotonic() - self.plotted_at >= PLOT_INTERVAL_S:
                try:
                    plot_progress(self.rows, paths.progress_png)
                except Exception as exc:  # a plot must never stop training
                    print(f"warning: progress plot not written: {exc}", file=sys.stderr)
                self.plotted_at = time.monotonic()

    callbacks = [EpochCommit()]
    if chief and _tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(str(paths.tensorboard_dir), write_graph=False))
    return callbacks


def _tensorboard_available() -> bool:
    """TensorBoard logs need the tensorboard package, which TensorFlow does not require."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _read_history(path: Path, before_epoch: int) -> list:
    if not path.is_file():
        return []
    try:
        with path.open(newline="") as f:
            rows = [{k: float(v) if k != "epoch" else int(float(v)) for k, v in r.items() if v not in ("", None)}
                    for r in csv.DictReader(f)]
        rows = [r for r in rows if r["epoch"] < before_epoch]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, csv.Error) as exc:
        raise IslesbenchError(f"{path}: unreadable training history ({type(exc).__name__}: {exc}); "
                              "delete the fold folder to retrain it") from None
    return rows


def _write_history(path: Path, rows: list) -> None:
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    lines = [",".join(keys)] + [",".join("" if r.get(k) is None else str(r.get(k)) for k in keys) for r in rows]
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_history(path) -> list:
    """history.csv rows as dicts (epoch int, the rest float)."""
    return _read_history(Path(path), before_epoch=10**9)


def plot_progress(rows: list, path: Path) -> None:
    """progress.png: training/validation loss and validation Dice by epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] + 1 for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in (("loss", "train loss"), ("val_loss", "val loss")):
        if any(key in r for r in rows):
            ax[0].plot(epochs, [r.get(key, np.nan) for r in rows], marker="o", label=label)
    ax[0].set_xlabel("epoch"), ax[0].set_ylabel("loss"), ax[0].legend(), ax[0].grid(alpha=0.3)
    # Per-sample Dice of the training batches and of the validation cases' slices (2-D) or slabs (3-D)
    # at 0.5; the fold's reported Dice comes later, on whole volumes in their own geometry.
    for key, label in (("dice", "train Dice (batches)"), ("val_dice", "val Dice (at 0.5)"),
                       ("mask_dice", "train Dice (batches)"), ("val_mask_dice", "val Dice (at 0.5)")):
        if any(key in r for r in rows):
            ax[1].plot(epochs, [r.get(key, np.nan) for r in rows], marker="o", label=label)
    ax[1].set_xlabel("epoch"), ax[1].set_ylabel("Dice"), ax[1].set_ylim(0, 1), ax[1].legend(), ax[1].grid(alpha=0.3)
    fig.suptitle(path.parent.parent.name + " / " + path.parent.name)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def fit_fold(config: ExperimentConfig, prepared: PreparedData, train_ids, val_ids, paths: FoldPaths,
             verbose=None):
    """Train (or continue training) one fold's model until config.train.epochs; the trained model, or None
    when the fold had finished training before."""
    import keras

    from islesbench.data import pipeline as data
    from islesbench import models

    chief = distribute.is_chief()
    strategy = distribute.make_strategy()
    is_3d = models.is_3d(config.model.arch)
    steps = data.steps_per_epoch(prepared, train_ids, config, is_3d)
    done = recover_last_epoch(paths) if chief else latest_epoch_checkpoint(paths.backup_dir)[0]
    latest = latest_epoch_checkpoint(paths.backup_dir)[1]
    if done >= config.train.epochs:
        return None
    print(f"training {config.name} fold on {distribute.describe(strategy)}: {len(train_ids)} train / "
          f"{len(val_ids)} val cases, {steps} steps per epoch, {config.train.precision}"
          + (f", resuming after epoch {done}" if done else ""), flush=True)
    key = model_reuse.reuse_key(config, len(prepared.modalities), steps, strategy) if latest is None else None
    model = model_reuse.reused_model(key)
    if model is None:
        keras.utils.set_random_seed(config.train.seed)  # initialisation and dropout; data order has its own seeds
    else:
        # The kept model carries its seeded state. tf.random.set_seed would also empty TensorFlow's kernel
        # cache, and re-instantiating PSPNet's compiled train step cost ~9 s a fold; Python's and NumPy's
        # generators are reseeded as set_random_seed does.
        random.seed(config.train.seed)
        np.random.seed(config.train.seed)
    with strategy.scope():
        if latest is not None:
            model = load_checkpoint(latest)
            rng_file = epoch_rng_file(paths.backup_dir, done)
            if rng_file.is_file():
                restore_seed_generator_states(model, read_json_file(rng_file, "random-generator state"))
        elif model is None:
            model, _ = build_compiled_model(config, len(prepared.modalities), steps)
            model_reuse.keep(key, model)
    outputs = tuple(model.output_names)
    if distribute.num_workers() > 1:
        train_ds = data.multi_worker_training_dataset(prepared, train_ids, config, is_3d, outputs)
    elif strategy.num_replicas_in_sync > 1:
        train_ds = data.distributed_training_dataset(strategy, prepared, train_ids, config, is_3d, output_names=outputs)
    else:
        train_ds = data.training_dataset(prepared, train_ids, config, is_3d, config.train.batch_size,
                                         output_names=outputs)
        # fit draws every epoch's batches from one stream; a resumed run must continue that stream where
        # the completed epochs left it, not restart it, to train on what the uninterrupted run trains on.
        train_ds = train_ds.skip(done * steps)
    val_ds = None
    distributed = strategy.num_replicas_in_sync > 1
    if distribute.num_workers() > 1:
        # Per-epoch slice validation would be sharded unevenly across workers (a worker can get no full
        # batch and the collectives stall); the whole-volume validation after training is the real one.
        pass
    elif val_ids and not is_3d:
        # Across replicas every batch must be full; the whole-volume validation after training is exact.
        n_val = data.slice_count(prepared, val_ids)
        if not distributed or n_val >= config.train.batch_size:
            val_ds = data.with_targets(data.slice_dataset(
                prepared, val_ids, config, training=False, batch_size=config.train.batch_size,
                drop_remainder=distributed), outputs)
    elif val_ids and not distributed:
        val_ds = data.with_targets(data.volume_dataset(prepared, val_ids, config, training=False, batch_size=1), outputs)
    verbose = verbose if verbose is not None else (1 if sys.stdout.isatty() else 2)
    callbacks = _make_callbacks(paths, done, chief)
    freeze = config.model.freeze_encoder_epochs if config.model.pretrained else 0
    phases = [(done, min(freeze, config.train.epochs), True)] if done < freeze else []
    phases.append((max(done, freeze), config.train.epochs, False))
    for start, stop, frozen in phases:
        if start >= stop:
            continue
        encoder = models.encoder_layers(model)
        if encoder and (frozen or any(not layer.trainable for layer in encoder)):
            for layer in encoder:
                layer.trainable = not frozen
            with strategy.scope():
                compile_model(model, config, steps)  # trainability changes need a fresh compile
        if distribute.num_workers() > 1:
            # Keras 3's eager "symbolic build" reduces a data batch across workers, which fails under
            # MultiWorkerMirroredStrategy (keras-team/keras#20585); without a pinned strategy the model
            # builds while tracing instead, and fit runs under the strategy from the enclosing scope.
            model._distribute_strategy = None
            distribute.patch_keras_multi_worker_reduction()
        with strategy.scope():
            model.fit(train_ds, epochs=stop, initial_epoch=start, steps_per_epoch=steps,
                      validation_data=val_ds, callbacks=callbacks, verbose=verbose, shuffle=False)
    return model


def validate_fold(config: ExperimentConfig, prepared: PreparedData, train_ids, val_ids, paths: FoldPaths,
                  model=None) -> dict:
    """Whole-volume validation with checkpoint_last: threshold chosen on training cases, metrics on val.

    `model` is the model fit_fold just trained, which holds checkpoint_last's weights (its predict step is
    traced already); without it checkpoint_last is loaded.
    """
    from islesbench import models

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
    data, _, _ = isles.read_nifti(entry["source"]["OT"])
    return data > 0  # validated earlier: {0,1}, {0,255} or {0,k} masks


def write_validation(paths: FoldPaths, prepared: PreparedData, val_ids, probability_of, threshold: float) -> dict:
    """Write masks, probability maps, per-case metrics and summary for the validation cases."""
    from islesbench.evaluation import case_metrics as metrics

    rows = []
    for i, case_id in enumerate(val_ids, 1):
        entry = prepared.cases[case_id]
        prob = probability_of(case_id)
        pred = prob >= threshold
        affine = np.asarray(entry["affine"])
        isles.save_nifti(paths.probability_path(case_id), prob.astype(np.float32), affine, entry["spacing"])
        isles.save_nifti(paths.mask_path(case_id), pred.astype(np.uint8), affine, entry["spacing"], dtype=np.uint8)
        row = {"case": case_id, **metrics.case_metrics(pred, reference_mask(entry), tuple(entry["spacing"]))}
        rows.append(row)
        print(f"[validate {i}/{len(val_ids)}] {case_id}: Dice {row['dice']:.3f}", flush=True)
    metrics.write_case_metrics(rows, paths.metrics_csv, paths.summary_json, extra_summary={"threshold": threshold})
    return metrics.summarize(rows)


def train_and_validate_fold(config: ExperimentConfig, prepared: PreparedData, train_ids, val_ids,
                            paths: FoldPaths, verbose=None) -> dict | None:
    """One fold, start to finish: train (or continue), validate, mark DONE; the summary on the chief.

    Keras' global state is dropped afterwards (a grid or a search trains dozens of folds in a process),
    except under a multi-worker strategy, which must outlive the fold.
    """
    chief = distribute.is_chief()
    try:
        model = fit_fold(config, prepared, train_ids, val_ids, paths, verbose=verbose)
        summary = validate_fold(config, prepared, train_ids, val_ids, paths, model) if chief else None
    finally:
        if distribute.num_workers() == 1:
            release_memory()
    if chief:
        finish_fold(paths)
    return summary


def release_memory() -> None:
    """Drop Keras' global state (graphs, models) and collect garbage before the next fold."""
    import gc

    import keras

    if model_reuse.holding():
        # The kept model's next fold reuses its compiled kernels (model_reuse). Its traced graphs are half
        # a million Python objects that every full collection walks (0.4 s each on 2 cores): what survives
        # this collection is frozen out of later ones until model_reuse.forget() thaws it.
        gc.collect()
        gc.freeze()
        return
    gc.unfreeze()
    keras.backend.clear_session(free_memory=True)
    gc.collect()


def finish_fold(paths: FoldPaths) -> None:
    """Mark the fold complete and drop the resume state."""
    write_text_atomic(paths.done_marker, time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    if paths.backup_dir.exists():
        shutil.rmtree(paths.backup_dir)


def prepare_fold_dir(paths: FoldPaths) -> None:
    """Create the fold folder and remove temporaries left by a killed run."""
    paths.root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(paths.root)
