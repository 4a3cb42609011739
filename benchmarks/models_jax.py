"""Paper-profile training and inference throughput on Keras' JAX backend, float32 against mixed bfloat16.

    KERAS_BACKEND=jax python benchmarks/models_jax.py --csv gpu_models.csv        # on a GPU: 256², the profile's batches
    KERAS_BACKEND=jax python benchmarks/models_jax.py --sizes 64 --steps 2 --matmul-n 512   # a smoke run on CPU

For machines without TensorFlow (a GPU image with JAX): it imports only keras, numpy, jax and islesbench's
model, config and loss modules (all written against keras.layers/keras.ops), and stops if importing those
pulled in tensorflow. Each model is `profile_config("paper", arch)`: PSPNet from scratch at full width, U-Net
(base 32, depth 4), V-Net (base 16, depth 4, slabs of 8 slices); batches as the profile trains them (16
slices, V-Net 2 slabs), the profile's focal loss (alpha-balanced, α 0.75, γ 2, via islesbench.models.losses) and
AdamW at the profile's learning rate and weight decay (a constant rate; training's cosine schedule adds a
few scalar operations a step). Inputs are random and already on the device, so no host-to-device copy is timed.

A step is timed as `train_on_batch` (it returns the loss as a host number, so every timed step has finished);
the first `--warmup` calls (tracing, XLA compilation, autotuning) are left out and reported apart as
`first_calls_s`. Inference is `predict_on_batch` on the same batch. FLOPs are counted as in
`benchmarks/models.py` (`forward_macs`: conv/dense multiply-accumulates from layer shapes, ×2; a training step
is 3 forward passes). The reference is an n×n by n×n `jnp.dot` in the same run (before and after the models,
the mean), in float32 at JAX's default precision, which is what Keras' float32 convolutions get (TF32 tensor
cores on Ampere and later GPUs), and in bfloat16; a float32 dot at HIGHEST precision (true float32) is
printed beside them. Each model's rate is a fraction of the same-precision dot.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # take GPU memory as needed, not 75 % up front

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # islesbench and benchmarks/ without an install (the GPU image has none)

import numpy as np  # noqa: E402

MODELS = ("pspnet", "unet", "vnet")
PRECISIONS = ("float32", "mixed_bfloat16")


def matmul_rates(n: int, repeats: int = 10) -> dict:
    """FLOP/s of an n×n by n×n jnp.dot: float32 (default and HIGHEST precision) and bfloat16, best of `repeats`."""
    import jax
    import jax.numpy as jnp

    key_a, key_b = jax.random.split(jax.random.PRNGKey(0))
    a32 = jax.random.normal(key_a, (n, n), jnp.float32)
    b32 = jax.random.normal(key_b, (n, n), jnp.float32)
    cases = {
        "float32": (a32, b32, None),
        "float32_highest": (a32, b32, jax.lax.Precision.HIGHEST),
        "bfloat16": (a32.astype(jnp.bfloat16), b32.astype(jnp.bfloat16), None),
    }
    rates = {}
    for name, (a, b, precision) in cases.items():
        dot = jax.jit(lambda a, b, p=precision: jnp.dot(a, b, precision=p))
        dot(a, b).block_until_ready()
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            dot(a, b).block_until_ready()
            best = min(best, time.perf_counter() - t)
        rates[name] = 2.0 * n**3 / best
    return rates


def timed_calls(call, steps: int, repeats: int) -> float:
    """Median over `repeats` of the mean seconds per call over `steps` calls (each call ends synchronised)."""
    means = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            call()
        means.append((time.perf_counter() - t) / steps)
    return statistics.median(means)


def first_calls(call, warmup: int) -> float:
    """Seconds the first `warmup` calls took (tracing and compilation included)."""
    t = time.perf_counter()
    for _ in range(warmup):
        call()
    return time.perf_counter() - t


def build(arch: str, size: int):
    """(model, config) of the paper profile for `arch` at `size`²."""
    from islesbench.config import profile_config
    from islesbench.models import build_from_config

    config = profile_config("paper", arch)
    return build_from_config(config.model, len(config.data.modalities), size), config


def batch_arrays(arch: str, size: int, config, seed: int = 0):
    """Random (x, y) of one training batch of the profile, on the default JAX device, and slices per sample."""
    import jax

    from islesbench.models import is_3d

    channels = len(config.data.modalities)
    depth = config.data.slab_depth if is_3d(arch) else 1
    shape = (config.data.slab_depth, size, size, channels) if is_3d(arch) else (size, size, channels)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(config.train.batch_size, *shape)).astype("float32")
    y = (rng.random((config.train.batch_size, *shape[:-1], 1)) < 0.05).astype("float32")
    return jax.device_put(x), jax.device_put(y), depth


def bench(arch: str, size: int, precision: str, macs: int | None, args) -> tuple[list, int]:
    """Inference and training rows of one paper-profile model under one Keras dtype policy; its forward MACs."""
    import keras

    from benchmarks.models import forward_macs
    from islesbench.models.losses import get_loss

    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    model, config = build(arch, size)
    x, y, depth = batch_arrays(arch, size, config)
    if macs is None:
        macs = forward_macs(model, np.asarray(x[:1]))
    batch = config.train.batch_size

    infer_first = first_calls(lambda: model.predict_on_batch(x), args.warmup)
    infer = timed_calls(lambda: model.predict_on_batch(x), args.steps, args.repeats)

    loss = get_loss(config.loss.name, config.loss.alpha, config.loss.gamma)
    optimizer = keras.optimizers.AdamW(learning_rate=config.optimizer.learning_rate,
                                       weight_decay=config.optimizer.weight_decay)
    model.compile(optimizer=optimizer, loss=loss)
    losses = []
    train_first = first_calls(lambda: losses.append(model.train_on_batch(x, y)), args.warmup)
    train = timed_calls(lambda: losses.append(model.train_on_batch(x, y)), args.steps, args.repeats)
    last_loss = float(np.asarray(losses[-1]).ravel()[0])

    rows = []
    for mode, seconds, first, passes in (("inference", infer, infer_first, 1), ("training", train, train_first, 3)):
        rows.append({
            "model": arch, "size": size, "precision": precision, "mode": mode, "batch": batch,
            "slices_per_sample": depth, "gmac_per_slice": round(macs / depth / 1e9, 3),
            "first_calls_s": round(first, 2), "s_per_step": round(seconds, 5),
            "steps_per_s": round(1.0 / seconds, 2), "slices_per_s": round(batch * depth / seconds, 1),
            "tflop_per_s": round(2 * macs * passes * batch / seconds / 1e12, 3),
            "last_loss": round(last_loss, 5) if mode == "training" else "",
            "loss_finite": bool(np.isfinite(last_loss)) if mode == "training" else "",
        })
    keras.backend.clear_session()
    gc.collect()
    return rows, macs


def write_rows(path: str, rows: list) -> None:
    """All rows so far to `path` (temporary name, then rename), so a run cut short keeps what it measured."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def print_table(rows: list) -> None:
    """One line per row: the numbers the README quotes."""
    print(f"{'model':7} {'size':>4} {'precision':15} {'mode':9} {'steps/s':>8} {'slices/s':>9} "
          f"{'TFLOP/s':>8} {'% dot':>6} {'first s':>8} {'loss':>9}")
    for r in rows:
        print(f"{r['model']:7} {r['size']:>4} {r['precision']:15} {r['mode']:9} {r['steps_per_s']:>8} "
              f"{r['slices_per_s']:>9} {r['tflop_per_s']:>8} {r['pct_of_dot']:>6} {r['first_calls_s']:>8} "
              f"{str(r['last_loss']):>9}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--sizes", nargs="+", type=int, default=[256])
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--steps", type=int, default=10, help="timed calls per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; the median of their means is reported")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first calls (tracing, compilation)")
    parser.add_argument("--matmul-n", type=int, default=8192, help="side of the reference jnp.dot")
    parser.add_argument("--conv3d", choices=("taps", "native"), default="taps",
                        help="V-Net convolutions as 2-D taps (islesbench's JAX path) or Keras' native 3-D op")
    parser.add_argument("--csv", help="write one row per (model, size, precision, mode) to this CSV file")
    args = parser.parse_args(argv)

    import jax
    import keras

    if keras.backend.backend() != "jax":
        print(f"models_jax.py: Keras backend is {keras.backend.backend()!r}; set KERAS_BACKEND=jax", file=sys.stderr)
        return 2
    # The check the GPU image needs: islesbench's model, config and loss code and the FLOP counter load
    # without TensorFlow. (Keras' own set_random_seed later imports TensorFlow where it is installed, to seed
    # it too; that is Keras' optional probe, and absent TensorFlow it is skipped.)
    import benchmarks.models  # noqa: F401
    import islesbench.config  # noqa: F401
    import islesbench.models.losses  # noqa: F401
    import islesbench.models.pspnet  # noqa: F401
    import islesbench.models.unet  # noqa: F401
    import islesbench.models.vnet  # noqa: F401

    from islesbench.models import conv3d

    conv3d.TAPS_ON_JAX = args.conv3d == "taps"
    if "tensorflow" in sys.modules:
        print("models_jax.py: importing islesbench's models, config or losses imported tensorflow", file=sys.stderr)
        return 2
    device = jax.devices()[0]
    card = getattr(device, "device_kind", device.platform)
    before = matmul_rates(args.matmul_n)
    print(f"# JAX {jax.__version__} on {device.platform} ({card}), Keras {keras.__version__}, "
          f"python {sys.version.split()[0]}; jnp.dot {args.matmul_n}²: "
          + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in before.items()), flush=True)

    rows = []
    for arch in args.models:
        for size in args.sizes:
            macs = None
            for precision in args.precisions:
                measured, macs = bench(arch, size, precision, macs, args)
                for row in measured:
                    print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
                    rows.append({"card": card, "jax": jax.__version__, "keras": keras.__version__,
                                 "conv3d": args.conv3d, **row})
                if args.csv:
                    write_rows(args.csv, rows)
    after = matmul_rates(args.matmul_n)
    dots = {k: (before[k] + after[k]) / 2 for k in before}
    print("# jnp.dot after the models: " + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in after.items()))
    for row in rows:
        reference = dots["bfloat16" if row["precision"] == "mixed_bfloat16" else "float32"]
        row["dot_tflop_per_s"] = round(reference / 1e12, 2)
        row["dot_f32_highest_tflop_per_s"] = round(dots["float32_highest"] / 1e12, 2)
        row["pct_of_dot"] = round(100 * row["tflop_per_s"] * 1e12 / reference, 1)
    if args.csv and rows:
        write_rows(args.csv, rows)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
