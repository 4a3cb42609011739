"""One compiled model per configuration, reset to its initial state for every fold in the same process.

Each fold of a run starts from the same seeded initialisation, so building and compiling a new model
per fold repeats work whose result is already in memory, and its most expensive part is not the build
but TensorFlow's tracing and graph optimisation of the train and predict steps: measured on 2 cores,
the quick profile's PSPNet spends about 14 s of its first epoch there, on every fold. Here the
model of the previous fold is kept with a snapshot of its state right after compiling (weights,
optimizer slots and step counter, dropout generators) and, when the next fold has the same
configuration, restored to exactly that state, so the fold trains what a fresh model trains and
Keras reuses the traced functions.

Between folds only garbage is collected: Keras' clear_session would also drop TensorFlow's kernel cache,
and re-instantiating the PSPNet's train step cost ~10 s of the next fold's first epoch. What survives
that collection (the kept model and its traced graphs) is frozen out of Python's later collections
(`gc.freeze`) until `forget()`. The session is cleared when a run ends and before another
configuration's model is built.

Only plain single-replica training reuses (a multi-replica or multi-worker strategy, a fold resumed
from a checkpoint and a frozen-encoder warm-up, which re-compiles, build as before); one model is kept.

Function-level imports here are keras only (islesbench --help stays fast).
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass
from pathlib import Path

from islesbench.storage.pretrain_records import weights_sha256
from islesbench.training.checkpoints import restore_seed_generator_states, seed_generator_states

# Set to False to build every fold afresh (tests compare the two).
ENABLED = True


@dataclass
class _Snapshot:
    key: str
    model: object
    weights: list
    optimizer_values: list
    generator_states: list


_kept: _Snapshot | None = None


def reuse_key(config, input_channels: int, steps_per_epoch: int, strategy) -> str | None:
    """What must match for a kept model to stand in for a new one; None where reuse does not apply.

    A pretrained encoder loaded from a file enters by the file's sha256, not only its path: weights replaced
    at the same path (a re-run pretraining) must not be stood in for by the model built from the old ones."""
    if not ENABLED or strategy.num_replicas_in_sync != 1 or config.model.freeze_encoder_epochs:
        return None
    settings = config.to_dict()
    settings.pop("name", None)
    weights = config.model.pretrained
    digest = weights_sha256(weights) if weights and weights != "imagenet" and Path(weights).is_file() else None
    return json.dumps([settings, input_channels, steps_per_epoch, digest], sort_keys=True, default=str)


def reused_model(key: str | None):
    """The kept model reset to its post-compile state if it was built for `key`, else None."""
    if _kept is not None and _kept.key != key:
        forget()  # another configuration's model and compiled kernels go before this one is built
        import keras

        keras.backend.clear_session(free_memory=True)
    if key is None or _kept is None:
        return None
    model = _kept.model
    model.set_weights(_kept.weights)
    for variable, value in zip(model.optimizer.variables, _kept.optimizer_values):
        variable.assign(value)
    restore_seed_generator_states(model, _kept.generator_states)
    return model


def keep(key: str | None, model) -> None:
    """Remember a freshly compiled model (optimizer built) and its initial state for the next fold."""
    global _kept
    if key is None:
        _kept = None
        return
    _kept = _Snapshot(key, model, model.get_weights(), [v.numpy() for v in model.optimizer.variables],
                      seed_generator_states(model))


def holding() -> bool:
    """Whether a model is kept for the next fold (whose compiled kernels must then be kept too)."""
    return _kept is not None


def forget() -> None:
    """Drop the kept model; what fold.release_memory froze while it was kept can be collected again."""
    global _kept
    _kept = None
    gc.unfreeze()
