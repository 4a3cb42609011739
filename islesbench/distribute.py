"""TensorFlow's own scale-out: which `tf.distribute` strategy a run trains under.

* `TF_CONFIG` naming two or more workers → MultiWorkerMirroredStrategy (many hosts, gRPC collectives).
* two or more visible GPUs → MirroredStrategy over all of them (one host).
* two or more logical CPU devices (tests split the CPU this way) → MirroredStrategy over those.
* otherwise the default strategy (one device).

The global batch size (TrainConfig.batch_size) is split across the replicas.
"""

from __future__ import annotations

import json
import os


def tf_config() -> dict:
    """The parsed TF_CONFIG environment variable ({} when unset)."""
    raw = os.environ.get("TF_CONFIG", "")
    return json.loads(raw) if raw.strip() else {}


def num_workers() -> int:
    """Workers named in TF_CONFIG (1 when it is unset)."""
    cluster = tf_config().get("cluster", {})
    return max(1, len(cluster.get("worker", [])) + len(cluster.get("chief", [])))


_STRATEGY = None


def make_strategy():
    """The strategy for this process (created once: TensorFlow allows one multi-worker strategy)."""
    global _STRATEGY
    if _STRATEGY is not None:
        return _STRATEGY
    import tensorflow as tf

    if num_workers() > 1:
        _STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        if len(gpus) > 1:
            _STRATEGY = tf.distribute.MirroredStrategy()
        elif not gpus and len(cpus) > 1:
            _STRATEGY = tf.distribute.MirroredStrategy([d.name for d in cpus])
        else:
            _STRATEGY = tf.distribute.get_strategy()
    return _STRATEGY


def is_chief() -> bool:
    """True for the process that writes results: the single process, or worker 0 / the chief."""
    task = tf_config().get("task", {})
    if not task or num_workers() <= 1:
        return True
    return task.get("type") == "chief" or (task.get("type") == "worker" and int(task.get("index", 0)) == 0
                                            and not tf_config().get("cluster", {}).get("chief"))


def describe(strategy) -> str:
    """One line naming the strategy and its replicas."""
    return f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s)"
