"""Training and validating one fold: its folder, the fit (resumable at epoch granularity,
islesbench.training.checkpoints), the whole-volume validation (islesbench.training.validation), and
Keras' memory between folds.

Function-level imports here are keras and islesbench.data.pipeline, which imports TensorFlow
(islesbench --help stays fast).
"""

from __future__ import annotations

import gc
import random
import sys

import numpy as np

from islesbench import models
from islesbench.config import ExperimentConfig, read_json_file
from islesbench.models.saving import load_checkpoint
from islesbench.runtime import distribute
from islesbench.storage.manifest import PreparedData
from islesbench.storage import training_facts
from islesbench.storage.run_layout import FoldPaths, finish_fold
from islesbench.training import checkpoints, model_reuse
from islesbench.training.callbacks import make_callbacks
from islesbench.training.compile import build_compiled_model, compile_model
from islesbench.training.validation import validate_fold


# Under several workers, what training.json says the batches held is counted on this many batches of the
# single-worker stream (the side counter is not carried through the workers' sharding).
PROBED_BATCHES = 32


def fit_fold(config: ExperimentConfig, prepared: PreparedData, train_ids, val_ids, paths: FoldPaths,
             verbose=None, fold_train_ids=None):
    """Train (or continue training) one fold's model until config.train.epochs; the trained model, or None
    when the fold had finished training before. `fold_train_ids`: the fold's whole training set when
    `train_ids` is a share of it (it may set the steps per epoch: pipeline.steps_per_epoch)."""
    from islesbench.data import pipeline

    chief = distribute.is_chief()
    strategy = distribute.make_strategy()
    is_3d = models.is_3d(config.model.arch)
    steps = pipeline.steps_per_epoch(prepared, train_ids, config, is_3d, fold_train_ids)
    done = checkpoints.recover_last_epoch(paths) if chief else checkpoints.latest_epoch_checkpoint(paths.backup_dir)[0]
    latest = checkpoints.latest_epoch_checkpoint(paths.backup_dir)[1]
    if done >= config.train.epochs:
        return None
    print(f"training {config.name} fold on {distribute.describe(strategy)}: {len(train_ids)} train / "
          f"{len(val_ids)} val cases, {steps} steps per epoch, {config.train.precision}"
          + (f", resuming after epoch {done}" if done else ""), flush=True)
    model = _fold_model(config, len(prepared.modalities), paths, strategy, steps, done, latest)
    outputs = tuple(model.output_names)
    counter = pipeline.LesionCounter() if distribute.num_workers() == 1 else None
    train_ds = _training_batches(config, prepared, train_ids, strategy, is_3d, outputs, done * steps, counter)
    val_ds = _validation_batches(config, prepared, val_ids, strategy, is_3d, outputs)
    verbose = verbose if verbose is not None else (1 if sys.stdout.isatty() else 2)
    callbacks = make_callbacks(paths, done, chief)
    freeze = config.model.freeze_encoder_epochs if config.model.pretrained else 0
    phases = [(done, min(freeze, config.train.epochs), True)] if done < freeze else []
    phases.append((max(done, freeze), config.train.epochs, False))
    for start, stop, frozen in phases:
        if start >= stop:
            continue
        _set_encoder_frozen(model, config, strategy, steps, frozen)
        if distribute.num_workers() > 1:
            # Keras 3's eager "symbolic build" reduces a data batch across workers, which fails under
            # MultiWorkerMirroredStrategy (keras-team/keras#20585); without a pinned strategy the model
            # builds while tracing instead, and fit runs under the strategy from the enclosing scope.
            model._distribute_strategy = None
            distribute.patch_keras_multi_worker_reduction()
        with strategy.scope():
            model.fit(train_ds, epochs=stop, initial_epoch=start, steps_per_epoch=steps,
                      validation_data=val_ds, callbacks=callbacks, verbose=verbose, shuffle=False)
    if chief:
        drawn = counter.statistics() if counter is not None else pipeline.lesion_statistics(
            pipeline.training_dataset(prepared, train_ids, config, is_3d, config.train.batch_size), PROBED_BATCHES)
        training_facts.write_training_facts(paths.training_facts, resolved_training_facts(
            config, prepared, train_ids, strategy, is_3d, steps, drawn, fold_train_ids))
    return model


def resolved_training_facts(config: ExperimentConfig, prepared: PreparedData, train_ids, strategy, is_3d: bool,
                            steps: int, drawn: dict, fold_train_ids=None) -> dict:
    """What this fold's training resolved to (storage/training_facts.py): steps and what set them, optimizer
    steps, replicas, batch, and `drawn`, what the training batches held (pipeline.lesion_statistics' fields:
    on one host every batch the stream yielded, from its start; under several workers the first
    PROBED_BATCHES batches of the single-worker stream)."""
    from islesbench.data import pipeline

    if config.train.steps_per_epoch:
        basis = training_facts.CONFIGURED
    elif len(pipeline.steps_basis_cases(train_ids, config, fold_train_ids)) != len(train_ids):
        basis = training_facts.FOLD_CASES
    else:
        basis = training_facts.TRAINING_CASES
    replicas = int(strategy.num_replicas_in_sync)
    batch = int(config.train.batch_size)
    return {"steps_per_epoch": int(steps), "steps_basis": basis, "epochs": int(config.train.epochs),
            "optimizer_steps": int(steps) * int(config.train.epochs), "replicas": replicas,
            "workers": distribute.num_workers(), "global_batch_size": batch,
            "per_replica_batch_size": batch // max(1, replicas),
            "slices_per_step": batch * (int(config.data.slab_depth) if is_3d else 1),
            "training_cases": len(train_ids), "training_slices": pipeline.slice_count(prepared, train_ids),
            "lesion_slice_fraction": float(config.data.lesion_slice_fraction),
            "drawn": drawn, "drawn_counted_on": "every batch drawn" if distribute.num_workers() == 1
            else f"the first {PROBED_BATCHES} batches of the single-worker stream"}


def _fold_model(config: ExperimentConfig, channels: int, paths: FoldPaths, strategy, steps: int, done: int,
                latest):
    """The model to fit: the latest epoch checkpoint (with its random-generator states), else the kept
    model of the previous fold (model_reuse), else a new one; the random generators seeded first."""
    import keras

    key = model_reuse.reuse_key(config, channels, steps, strategy) if latest is None else None
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
            rng_file = checkpoints.epoch_rng_file(paths.backup_dir, done)
            if rng_file.is_file():
                checkpoints.restore_seed_generator_states(model, read_json_file(rng_file, "random-generator state"))
        elif model is None:
            model, _ = build_compiled_model(config, channels, steps)
            model_reuse.keep(key, model)
    return model


def _training_batches(config: ExperimentConfig, prepared: PreparedData, train_ids, strategy, is_3d: bool,
                      outputs: tuple, skip_batches: int, counter=None):
    """The training stream for the strategy, its batches counted by `counter` (one host); on one replica it
    continues after `skip_batches` batches (which the counter counts too: they are the stream's start)."""
    from islesbench.data import pipeline

    if distribute.num_workers() > 1:
        return pipeline.multi_worker_training_dataset(prepared, train_ids, config, is_3d, outputs)
    if strategy.num_replicas_in_sync > 1:
        return pipeline.distributed_training_dataset(strategy, prepared, train_ids, config, is_3d, output_names=outputs,
                                                     counter=counter)
    train_ds = pipeline.training_dataset(prepared, train_ids, config, is_3d, config.train.batch_size,
                                     output_names=outputs, counter=counter)
    # fit draws every epoch's batches from one stream; a resumed run must continue that stream where
    # the completed epochs left it, not restart it, to train on what the uninterrupted run trains on.
    return train_ds.skip(skip_batches)


def _validation_batches(config: ExperimentConfig, prepared: PreparedData, val_ids, strategy, is_3d: bool,
                        outputs: tuple):
    """The per-epoch validation batches (slices, or whole volumes for 3-D), or None where there are none."""
    from islesbench.data import pipeline

    distributed = strategy.num_replicas_in_sync > 1
    if distribute.num_workers() > 1:
        # Per-epoch slice validation would be sharded unevenly across workers (a worker can get no full
        # batch and the collectives stall); the whole-volume validation after training is the real one.
        return None
    if val_ids and not is_3d:
        # Across replicas every batch must be full; the whole-volume validation after training is exact.
        n_val = pipeline.slice_count(prepared, val_ids)
        if not distributed or n_val >= config.train.batch_size:
            return pipeline.with_targets(pipeline.slice_dataset(
                prepared, val_ids, config, training=False, batch_size=config.train.batch_size,
                drop_remainder=distributed), outputs)
        return None
    if val_ids and not distributed:
        return pipeline.with_targets(pipeline.volume_dataset(prepared, val_ids, config, training=False, batch_size=1),
                                 outputs)
    return None


def _set_encoder_frozen(model, config: ExperimentConfig, strategy, steps: int, frozen: bool) -> None:
    """Freeze or unfreeze a pretrained encoder for a training phase, recompiling when that changes anything."""
    encoder = models.encoder_layers(model)
    if encoder and (frozen or any(not layer.trainable for layer in encoder)):
        for layer in encoder:
            layer.trainable = not frozen
        with strategy.scope():
            compile_model(model, config, steps)  # trainability changes need a fresh compile


def train_and_validate_fold(config: ExperimentConfig, prepared: PreparedData, train_ids, val_ids,
                            paths: FoldPaths, verbose=None, fold_train_ids=None) -> dict | None:
    """One fold, start to finish: train (or continue), validate, mark DONE; the summary on the chief.
    `fold_train_ids`: as in fit_fold.

    Keras' global state is dropped afterwards (a grid or a search trains dozens of folds in a process),
    except under a multi-worker strategy, which must outlive the fold.
    """
    chief = distribute.is_chief()
    try:
        model = fit_fold(config, prepared, train_ids, val_ids, paths, verbose=verbose, fold_train_ids=fold_train_ids)
        summary = validate_fold(config, prepared, train_ids, val_ids, paths, model) if chief else None
    finally:
        if distribute.num_workers() == 1:
            release_memory()
    if chief:
        finish_fold(paths)
    return summary


def release_memory() -> None:
    """Drop Keras' global state (graphs, models) and collect garbage before the next fold."""
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
