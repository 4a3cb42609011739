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

# TensorFlow and Keras imported inside functions only, so that `islesbench --help` and start-up stay fast.


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
    import tensorflow as tf

    name = type(strategy).__name__
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "MultiWorkerMirroredStrategy"  # its class is called CollectiveAllReduceStrategy
    return f"{name} with {strategy.num_replicas_in_sync} replica(s)"


def device_names(strategy) -> list:
    """What each of the strategy's devices is: `CPU`, or the GPU's name (`GPU: NVIDIA H200`), one per device."""
    import tensorflow as tf

    gpu_names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            gpu_names.append(tf.config.experimental.get_device_details(gpu).get("device_name") or gpu.name)
        except (ValueError, RuntimeError):
            gpu_names.append(gpu.name)
    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:  # the default strategy: TensorFlow's own placement, the first GPU if there is one
        devices = ["device:GPU:0" if gpu_names else "device:CPU:0"]
    names = []
    for device in devices:
        kind, _, index = device.rpartition("device:")[2].partition(":")
        if kind.upper() == "GPU" and index.isdigit() and int(index) < len(gpu_names):
            names.append(f"GPU: {gpu_names[int(index)]}")
        else:
            names.append(kind.upper() or device)
    return names


def patch_keras_multi_worker_reduction() -> None:
    """Let Keras 3 average per-replica scalars (loss, metrics) across workers.

    Keras 3's TensorFlow trainer reduces a step's outputs under MultiWorkerMirroredStrategy with
    `strategy.reduce("MEAN", v, axis=0)`, which fails on the scalar loss and metric values
    (keras-team/keras#20585: Keras 3 `fit` does not run multi-worker). Averaging over replicas with
    axis=None is what the single-host path does; this shim applies it on the multi-worker path only.
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "_islesbench_shim", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None) if tf_trainer._is_per_replica_instance(v) else v,
                values)
        return original(values, strategy, reduction)

    reduce_per_replica._islesbench_shim = True
    tf_trainer.reduce_per_replica = reduce_per_replica
