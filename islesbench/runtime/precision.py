"""Which floating-point precision the models compute in: `train.precision` and Keras' mixed-precision policy.

- `float32`: everything in float32.
- `mixed_bfloat16`: layers compute in bfloat16, variables stay float32 (Keras' policy). bfloat16 has
  float32's exponent range, so no loss scaling is needed.
- `mixed_float16`: layers compute in float16; Keras wraps the optimizer in a LossScaleOptimizer at
  compile time (the model's policy is mixed_float16), so small gradients do not underflow.
- `auto` (the default): bfloat16 where the hardware runs it natively, float32 elsewhere (`resolve`).

Every model ends in a float32 sigmoid (`dtype="float32"` on its output layer), BatchNormalization computes
its statistics in float32 (Keras upcasts), and the losses, metrics, thresholds and saved probability maps
are float32, so only the convolutions and their neighbours run in the reduced type.

The policy is a property of the layers, fixed when a model is built (and stored in a `.keras` file), so
prediction and validation run in the precision the model was trained in unless `with_precision` rebuilds
it in another one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from islesbench.config import PRECISIONS
from islesbench.errors import IslesbenchError

# TensorFlow, Keras and JAX imported inside functions only, so that `islesbench --help` and start-up stay fast.

# Compute capability from which NVIDIA GPUs have bfloat16 tensor cores (Ampere).
BF16_GPU_CAPABILITY = (8, 0)
# CPU flags (Linux /proc/cpuinfo) of native bfloat16 dot products: AVX-512 BF16 and AMX.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def check(precision: str) -> None:
    if precision not in PRECISIONS:
        raise IslesbenchError(f"train.precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")


def cpu_bf16_flags(cpuinfo: str | None = None) -> list:
    """The native-bfloat16 flags this CPU reports (empty where /proc/cpuinfo is not readable)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return []
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return [f for f in BF16_CPU_FLAGS if f in flags]


def _gpu_capabilities() -> list:
    """(major, minor) compute capability of every visible GPU of the active Keras backend."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        caps = []
        for device in jax.devices():
            if device.platform == "gpu":
                cc = str(getattr(device, "compute_capability", "0.0"))
                major, _, minor = cc.partition(".")
                caps.append((int(major or 0), int(minor or 0)))
        return caps
    import tensorflow as tf

    caps = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            caps.append(tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))))
        except Exception:  # details are best effort: an unknown GPU counts as not native
            caps.append((0, 0))
    return caps


def native_bfloat16() -> tuple[bool, str]:
    """(whether this machine runs bfloat16 natively, why), for `auto`."""
    import keras

    caps = _gpu_capabilities()
    if caps:
        if all(c >= BF16_GPU_CAPABILITY for c in caps):
            return True, f"GPU compute capability {'.'.join(map(str, min(caps)))} ≥ 8.0"
        return False, f"GPU compute capability {'.'.join(map(str, min(caps)))} < 8.0"
    flags = cpu_bf16_flags()
    if not flags:
        return False, "CPU without AVX-512 BF16 or AMX"
    if keras.backend.backend() != "tensorflow":
        # XLA's CPU backend emulates bfloat16 convolutions; only oneDNN (TensorFlow) uses the units.
        return False, f"CPU has {'/'.join(flags)} but the {keras.backend.backend()} backend does not use it"
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        return False, f"CPU has {'/'.join(flags)} but oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0)"
    return True, f"CPU has {'/'.join(flags)} (oneDNN)"


def resolve(precision: str) -> str:
    """`precision` with `auto` replaced by what this machine runs natively."""
    check(precision)
    if precision != "auto":
        return precision
    native, _ = native_bfloat16()
    return "mixed_bfloat16" if native else "float32"


def describe(precision: str) -> str:
    """'mixed_bfloat16 (auto: CPU has avx512_bf16 (oneDNN))' or 'float32'."""
    check(precision)
    if precision != "auto":
        return precision
    native, why = native_bfloat16()
    return f"{'mixed_bfloat16' if native else 'float32'} (auto: {why})"


@contextlib.contextmanager
def policy(precision: str):
    """Build models inside this block to give their layers `precision`'s policy; the global one is restored."""
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(resolve(precision))
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def model_precision(model) -> str:
    """The policy name a (built or loaded) model computes in: its first layer with weights decides."""
    for layer in model.layers:
        if layer.weights:
            return layer.dtype_policy.name
    return model.dtype_policy.name


def with_precision(model, precision: str):
    """`model` itself if it already computes in `precision`, else a copy rebuilt in it with the same weights.

    The output layers keep their explicit float32 policy, so probabilities stay float32 either way.
    """
    import keras

    resolved = resolve(precision)
    if model_precision(model) == resolved:
        return model
    outputs = {t._keras_history.operation.name for t in keras.tree.flatten(model.outputs)}

    def clone_layer(layer):
        config = layer.get_config()
        if layer.name not in outputs and not isinstance(layer, keras.layers.InputLayer):
            config["dtype"] = resolved
        return layer.__class__.from_config(config)

    with policy(resolved):
        copy = keras.models.clone_model(model, clone_function=clone_layer)
    copy.set_weights(model.get_weights())
    return copy
