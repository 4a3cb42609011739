"""Training and inference throughput of every model, beside a float32 matmul measured in the same run.

    python benchmarks/models.py                        # all models at 128² and 256², batch 4
    python benchmarks/models.py --models pspnet --sizes 128 --precision mixed_bfloat16 --jit
    python benchmarks/models.py --probe                # also: dilated vs plain 3×3 conv kernels

FLOPs are counted exactly from layer shapes: every Conv/Conv-transpose/Dense layer's multiply-accumulates
(output elements × kernel taps × input channels; for transposed convs input elements × taps × output
channels), ×2 for FLOPs; a training step counts 3× the forward pass (backward ≈ 2× forward). BatchNorm,
activations, pooling and the PPM/resize einsums are left out (< 1 % here). The matmul reference is a float32
2048² GEMM, timed in the same process just before and after each model (mean of the two), so "% of
matmul" compares like with like on a shared machine.
A V-Net sample is a slab of `--slab-depth` slices; its slices/s counts slices.

Results go to stdout and, with --csv, one row per (model, size, mode) to a CSV file.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def matmul_flops_per_s(n: int = 2048, repeats: int = 10) -> float:
    """Measured float32 GEMM rate (FLOP/s) of an n×n by n×n product."""
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    mm = tf.function(lambda a, b: tf.linalg.matmul(a, b))
    mm(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        mm(a, b).numpy()
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best


def forward_macs(model, sample: np.ndarray) -> int:
    """Exact conv/dense multiply-accumulates of one forward pass on `sample` (a batch of one)."""
    import keras

    counted = (
        keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
        keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose, keras.layers.Dense,
    )
    layers = [layer for layer in model.layers if isinstance(layer, counted)]
    probe = keras.Model(model.inputs, [t for layer in layers for t in (layer.input, layer.output)])
    shapes = [np.shape(a) for a in probe.predict(sample, verbose=0)]
    total = 0
    for i, layer in enumerate(layers):
        in_shape, out_shape = shapes[2 * i], shapes[2 * i + 1]
        kernel = layer.kernel.shape  # (*taps, in, out) for conv and dense, (*taps, out, in) for transposed
        taps = int(np.prod(kernel[:-2])) if len(kernel) > 2 else 1
        if isinstance(layer, (keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)):
            total += int(np.prod(in_shape[1:])) * taps * kernel[-2]
        else:
            total += int(np.prod(out_shape[1:])) * taps * kernel[-2]
    return total


def time_steps(step, steps: int, warmup: int) -> float:
    """Seconds per call of `step()` after `warmup` calls (the first traces/compiles)."""
    for _ in range(warmup):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps


def bench_model(name: str, size: int, args) -> list:
    """Rows for inference and training of one model at one in-plane size."""
    import keras

    from islesbench.config import ModelConfig
    from islesbench.losses import get_loss
    from islesbench.models import build_from_config, is_3d

    keras.utils.set_random_seed(0)
    model = build_from_config(ModelConfig(arch=name), args.channels, size)
    shape = (args.slab_depth, size, size, args.channels) if is_3d(name) else (size, size, args.channels)
    slices_per_sample = args.slab_depth if is_3d(name) else 1
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, *shape)).astype("float32")
    y = (rng.random((args.batch, *shape[:-1], 1)) < 0.05).astype("float32")
    macs = forward_macs(model, x[:1])
    rows = []
    infer = time_steps(lambda: model.predict_on_batch(x), args.steps, args.warmup)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=get_loss("focal"), jit_compile=args.jit)
    train = time_steps(lambda: model.train_on_batch(x, y), args.steps, args.warmup)
    for mode, seconds, factor in (("inference", infer, 1), ("training", train, 3)):
        flops = 2 * macs * factor * args.batch
        rows.append({
            "model": name, "size": size, "mode": mode, "batch": args.batch, "precision": args.precision,
            "jit": args.jit, "gmac_per_slice": round(macs / slices_per_sample / 1e9, 3),
            "s_per_step": round(seconds, 4),
            "slices_per_s": round(args.batch * slices_per_sample / seconds, 2),
            "gflop_per_s": round(flops / seconds / 1e9, 1),
        })
    del model
    keras.backend.clear_session()
    return rows


def probe_dilated_conv(args) -> list:
    """GFLOP/s of one 3×3 conv (256→256 ch, 32×32, batch 4) at dilation 1, 2, 4, forward + backward."""
    import keras
    import tensorflow as tf

    rows = []
    x = tf.random.normal((args.batch, 32, 32, 256))
    for rate in (1, 2, 4):
        conv = keras.layers.Conv2D(256, 3, padding="same", dilation_rate=rate)
        conv.build(x.shape)

        @tf.function(jit_compile=args.jit)
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(conv(x))
            return tape.gradient(loss, [x, conv.kernel])

        seconds = time_steps(lambda: [t.numpy() for t in step(x)], args.steps * 3, 1)
        flops = 3 * 2 * args.batch * 32 * 32 * 256 * 9 * 256
        rows.append({"dilation": rate, "ms": round(seconds * 1e3, 2), "gflop_per_s": round(flops / seconds / 1e9, 1)})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["pspnet", "unet", "vnet"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[128, 256])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (tracing)")
    parser.add_argument("--channels", type=int, default=5)
    parser.add_argument("--slab-depth", type=int, default=8, help="V-Net slices per sample")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--jit", action="store_true", help="compile the train step with XLA (jit_compile)")
    parser.add_argument("--probe", action="store_true", help="also time plain vs dilated 3x3 convs")
    parser.add_argument("--csv", help="append result rows to this CSV file")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(args.precision)
    ref = matmul_flops_per_s()
    print(f"# TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
          f"oneDNN {'off' if os.environ.get('TF_ENABLE_ONEDNN_OPTS') == '0' else 'on'}, precision {args.precision}, "
          f"jit {args.jit}; float32 matmul 2048²: {ref / 1e9:.1f} GFLOP/s", flush=True)
    rows = []
    if args.probe:
        for row in probe_dilated_conv(args):
            print(f"conv3x3 256ch 32² dilation {row['dilation']}: {row['ms']} ms/step fwd+bwd, "
                  f"{row['gflop_per_s']} GFLOP/s ({100 * row['gflop_per_s'] * 1e9 / ref:.0f}% of matmul)", flush=True)
    for name in args.models:
        for size in args.sizes:
            # The machine may be shared: re-measure the matmul around each model and use the mean.
            before = matmul_flops_per_s()
            measured = bench_model(name, size, args)
            ref = (before + matmul_flops_per_s()) / 2
            for row in measured:
                row["matmul_gflop_per_s"] = round(ref / 1e9, 1)
                row["pct_of_matmul"] = round(100 * row["gflop_per_s"] * 1e9 / ref, 1)
                rows.append(row)
                print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    if args.csv and rows:
        new = not os.path.exists(args.csv)
        with open(args.csv, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            if new:
                writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
