"""Where a paper model's training step goes on Keras' JAX backend: each layer's forward + backward time,
float32 against mixed bfloat16, and each 3-D convolution beside the same convolution as 2-D taps.

    KERAS_BACKEND=jax python benchmarks/layers_jax.py --models vnet --csv vnet_layers.csv      # on a GPU
    KERAS_BACKEND=jax python benchmarks/layers_jax.py --models vnet --size 32 --steps 2        # a smoke run

Written to find why the paper V-Net trained slower in bfloat16 than in float32 on an H200 (88 against 149
slices/s, `benchmarks/models_jax.py`). Every layer of the model (as `profile_config("paper", arch)` builds
it, at the profile's batch) runs alone: its inputs are random arrays of the shapes and compute dtype the
layer sees inside the model, and one timed call is `jax.vjp` of the layer's `stateless_call` (training
mode) followed by the pull-back of a random cotangent, jitted: the layer's share of a training step. Layer
times add up to roughly the step (the optimizer update and the loss are left out).

For each 3-D convolution the same contraction is also timed alone (unless `--no-taps`) in two forms, in
float32 and bfloat16: XLA's native 3-D op, and what `islesbench.models.conv3d` runs on JAX (one 2-D
convolution per depth tap of the kernel over the slab folded to (B·D, H, W, C), summed; the transposed
convolution as a 2-D transposed convolution over the folded slab). `--conv3d native` builds the model's
layers with the native op, as before that path existed.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # islesbench and benchmarks/ without an install (the GPU image has none)

import numpy as np  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16")


def timed(call, steps: int, repeats: int, warmup: int) -> float:
    """Median over `repeats` of the mean seconds per call over `steps` calls, after `warmup` calls."""
    import jax

    for _ in range(warmup):
        jax.block_until_ready(call())
    means = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            out = call()
        jax.block_until_ready(out)
        means.append((time.perf_counter() - t) / steps)
    return statistics.median(means)


def concrete(shape, batch: int, depth: int) -> tuple:
    """A KerasTensor shape with the batch and (for 5-D) the depth filled in."""
    dims = list(shape)
    dims[0] = batch
    if len(dims) == 5 and dims[1] is None:
        dims[1] = depth
    return tuple(dims)


def layer_inputs(layer, batch: int, depth: int, rng) -> list:
    """Random arrays of the shapes and compute dtype `layer` is called with inside its model."""
    import jax.numpy as jnp

    tensors = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    return [jnp.asarray(rng.normal(size=concrete(t.shape, batch, depth)), dtype=layer.compute_dtype)
            for t in tensors]


def vjp_call(fn, params, xs, rng):
    """A jitted forward + backward of `fn(params, xs)` with a fixed random cotangent: returns a thunk."""
    import jax
    import jax.numpy as jnp

    out = jax.eval_shape(fn, params, xs)
    cotangent = jnp.asarray(rng.normal(size=out.shape), dtype=out.dtype)

    @jax.jit
    def step(params, xs):
        _, pull_back = jax.vjp(fn, params, xs)
        return pull_back(cotangent)

    return lambda: step(params, xs)


def layer_row(layer, batch: int, depth: int, rng, args) -> float:
    """Seconds of one forward + backward of `layer` alone at its in-model shapes."""
    import keras

    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    xs = layer_inputs(layer, batch, depth, rng)
    several = isinstance(layer.input, (list, tuple))

    def fn(params, xs):
        # Through __call__ (not stateless_call), so mixed precision casts the weights as it does in the model.
        mapping = [*zip(layer.trainable_variables, params), *zip(layer.non_trainable_variables, non_trainable)]
        with keras.StatelessScope(state_mapping=mapping):
            return layer(xs if several else xs[0], training=True)

    return timed(vjp_call(fn, trainable, xs, rng), args.steps, args.repeats, args.warmup)


def conv3d_native(x, w, strides, padding: str):
    import jax

    return jax.lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))


def transpose3d_native(x, w, strides, padding: str):
    import jax

    return jax.lax.conv_transpose(x, w, strides, padding, dimension_numbers=("NDHWC", "DHWOI", "NDHWC"))


def tap_rows(layer, batch: int, depth: int, rng, args) -> dict:
    """For a (transposed) 3-D convolution layer: seconds of the native op and of the 2-D-tap form, per dtype."""
    import jax.numpy as jnp

    from islesbench.models.conv3d import conv3d_as_taps, conv3d_transpose_as_2d

    transposed = "Transpose" in type(layer).__name__
    strides, kd = tuple(layer.strides), layer.kernel_size[0]
    if transposed and (kd != 1 or strides[0] != 1):
        return {}
    if not transposed and kd > 1 and strides[0] != 1:
        return {}
    shape = concrete(layer.input.shape, batch, depth)
    rows = {}
    for dtype in ("float32", "bfloat16"):
        x = jnp.asarray(rng.normal(size=shape), dtype=dtype)
        w = jnp.asarray(rng.normal(size=tuple(layer.kernel.shape)) * 0.05, dtype=dtype)
        padding = layer.padding
        if transposed:
            forms = {"native": lambda p, xs: transpose3d_native(xs, p, strides, padding.upper()),
                     "taps": lambda p, xs: conv3d_transpose_as_2d(xs, p, strides, padding)}
        else:
            forms = {"native": lambda p, xs: conv3d_native(xs, p, strides, padding.upper()),
                     "taps": lambda p, xs: conv3d_as_taps(xs, p, strides, padding)}
        for form, fn in forms.items():
            rows[f"{form}_{dtype}_s"] = timed(vjp_call(fn, w, x, rng), args.steps, args.repeats, args.warmup)
    return rows


def write_rows(path: str | None, rows: list) -> None:
    """All rows so far to `path` (temporary name, then rename), so a run cut short keeps what it measured."""
    if not path or not rows:
        return
    fields = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("model", "layer", "kind"), k))
    with open(path + ".tmp", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(path + ".tmp", path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["vnet"], choices=("pspnet", "unet", "vnet"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--layers", default="", help="time only the layers whose name matches this regex")
    parser.add_argument("--no-taps", dest="taps", action="store_false", help="skip the 2-D-tap comparison")
    parser.add_argument("--conv3d", choices=("taps", "native"), default="taps",
                        help="V-Net convolutions as 2-D taps (islesbench's JAX path) or Keras' native 3-D op")
    parser.add_argument("--csv", help="one row per (model, layer) to this CSV file")
    args = parser.parse_args(argv)

    import jax
    import keras

    from islesbench.config import profile_config
    from islesbench.models import build_from_config, conv3d, is_3d

    if keras.backend.backend() != "jax":
        print("layers_jax.py: set KERAS_BACKEND=jax", file=sys.stderr)
        return 2
    conv3d.TAPS_ON_JAX = args.conv3d == "taps"
    device = jax.devices()[0]
    print(f"# conv3d {args.conv3d}; JAX {jax.__version__} on {getattr(device, 'device_kind', device.platform)}, Keras {keras.__version__}",
          flush=True)
    rows = []
    for arch in args.models:
        config = profile_config("paper", arch)
        depth = config.data.slab_depth if is_3d(arch) else 1
        batch = config.train.batch_size
        per_precision = {}
        for precision in PRECISIONS:
            keras.mixed_precision.set_global_policy(precision)
            keras.utils.set_random_seed(0)
            model = build_from_config(config.model, len(config.data.modalities), args.size)
            rng = np.random.default_rng(0)
            times = {}
            for layer in model.layers:
                if isinstance(layer, keras.layers.InputLayer) or not re.search(args.layers, layer.name):
                    continue
                times[layer.name] = (type(layer).__name__, layer_row(layer, batch, depth, rng, args))
                if args.taps and precision == "float32" and is_3d(arch) and hasattr(layer, "kernel_size"):
                    taps = tap_rows(layer, batch, depth, rng, args)
                    if taps:
                        rows.append({"model": arch, "layer": layer.name, "kind": type(layer).__name__,
                                     "input": "x".join(map(str, concrete(layer.input.shape, batch, depth))),
                                     "kernel": "x".join(map(str, layer.kernel.shape)),
                                     **{k: round(v * 1e3, 3) for k, v in taps.items()}})
                        print(f"taps {layer.name}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in taps.items()),
                              flush=True)
                        write_rows(args.csv, rows)
            per_precision[precision] = times
            keras.backend.clear_session()
        by_kind = defaultdict(lambda: [0.0, 0.0])
        print(f"\n{arch}: layer                      kind                    float32 ms  bfloat16 ms   ratio")
        for name, (kind, t32) in per_precision["float32"].items():
            t16 = per_precision["mixed_bfloat16"][name][1]
            by_kind[kind][0] += t32
            by_kind[kind][1] += t16
            print(f"  {name:32} {kind:24} {t32 * 1e3:9.3f} {t16 * 1e3:11.3f} {t16 / t32:7.2f}")
            rows.append({"model": arch, "layer": name, "kind": kind, "float32_ms": round(t32 * 1e3, 3),
                         "bfloat16_ms": round(t16 * 1e3, 3)})
        total32 = sum(v[0] for v in by_kind.values())
        total16 = sum(v[1] for v in by_kind.values())
        print(f"\n{arch} by layer kind (ms; share of the summed layers):")
        for kind, (t32, t16) in sorted(by_kind.items(), key=lambda kv: -kv[1][1]):
            print(f"  {kind:28} float32 {t32 * 1e3:8.2f} ({100 * t32 / total32:4.1f} %)   "
                  f"bfloat16 {t16 * 1e3:8.2f} ({100 * t16 / total16:4.1f} %)")
        print(f"  {'all layers':28} float32 {total32 * 1e3:8.2f}   bfloat16 {total16 * 1e3:8.2f}", flush=True)
    write_rows(args.csv, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
