"""Training and inference throughput of every model in float32 and bfloat16, beside same-run matmul rates.

    python benchmarks/models.py                         # both profiles' models, float32 and mixed_bfloat16
    python benchmarks/models.py --profiles quick --models pspnet --precisions mixed_bfloat16 --breakdown
    python benchmarks/models.py --probe                 # also: dilated vs plain 3×3 conv kernels, and
                                                        # oneDNN's weight gradients against one matmul

Each model is built and fed as its profile trains it (`islesbench.config.profile_config`): the quick
profile's widths, input sizes and batch (what the README's main command trains), and the paper profile's
at 256² with its batch of 16 slices (V-Net: 2 slabs of 8), as `benchmarks/models_jax.py` does on a GPU.
(`cpu-models-paper-bf16-amx-db2f4ad.csv` and older files used 4 slices, V-Net 1 slab, to keep steps short;
a step of 4 spreads the per-step costs (optimizer, small layers) over a quarter of the work.)
FLOPs are counted exactly from layer shapes: every Conv/Conv-transpose/Dense layer's multiply-accumulates
(output elements × kernel taps × input channels; for transposed convs input elements × taps × output
channels), ×2 for FLOPs; a training step counts 3× the forward pass (backward ≈ 2× forward). BatchNorm,
activations, pooling and the PPM/resize contractions are left out (< 1 % here). The references are a
2048² GEMM in float32 and in bfloat16, timed in the same process just before and after each model (mean
of the two), so "% of matmul" compares like with like on a shared machine.
A V-Net sample is a slab of `--slab-depth` slices; its slices/s counts slices. The training step is the one
`islesbench run` takes: islesbench's optimizer (`training.compile.cosine_adamw`, a fused AdamW update on
TensorFlow; before 9a70cca this script used Keras' AdamW) and the PSPNet's `--weight-gradients` (default
`auto`, as training; the CSV's weight_gradients column says what it resolved to).
`--breakdown` profiles three training steps (TensorFlow's profiler) and gives each layer type's share of
the op time, dilated convolutions apart: where a model stays below the matmul rate, this names the layers.

Results go to stdout and, with --csv, one row per (model, profile, size, mode, precision) to a CSV file,
each with what made it: the commit (and whether the tree had code changes), the command, the CPU model and
the flags that change which kernels run (`islesbench.storage.provenance`; AMX or not changes the numbers).
"""

from __future__ import annotations

import argparse
import collections
import csv
import glob
import os
import re
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16")
CSV_FIELDS = ["model", "profile", "size", "width", "mode", "batch", "precision", "weight_gradients",
              "gmac_per_slice", "s_per_step",
              "slices_per_s", "gflop_per_s", "matmul_f32_gflop_per_s", "matmul_bf16_gflop_per_s",
              "pct_of_f32_matmul", "pct_of_bf16_matmul", "commit", "tree_modified", "command", "cpu_model",
              "cpu_flags", "breakdown"]


def matmul_flops_per_s(dtype: str = "float32", n: int = 2048, repeats: int = 10) -> float:
    """Measured GEMM rate (FLOP/s) of an n×n by n×n product in `dtype`."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    mm = tf.function(lambda a, b: tf.linalg.matmul(a, b))
    mm(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        mm(a, b).numpy()
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best


def matmul_rates() -> dict:
    return {dtype: matmul_flops_per_s(dtype) for dtype in ("float32", "bfloat16")}


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
    """Seconds per call of `step()`: the best of `steps` calls after `warmup` calls (the first traces)."""
    for _ in range(warmup):
        step()
    best = float("inf")
    for _ in range(steps):
        t = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t)
    return best


def model_setup(arch: str, profile: str, args):
    """(config, input shape of one sample, batch, slices per sample) as the profile trains `arch`."""
    from islesbench.config import apply_overrides, profile_config
    from islesbench.models import is_3d

    config = profile_config(profile, arch)
    if profile == "paper":
        config = apply_overrides(config, {"data": {"input_size": 256}})
    if arch == "pspnet":
        config = apply_overrides(config, {"model": {"weight_gradients": getattr(args, "weight_gradients", "auto")}})
    size = config.data.input_size
    depth = config.data.slab_depth
    shape = (depth, size, size, args.channels) if is_3d(arch) else (size, size, args.channels)
    batch = args.batch or config.train.batch_size
    return config, shape, batch, depth if is_3d(arch) else 1


def bench_model(arch: str, profile: str, precision: str, args) -> tuple[list, dict | None]:
    """Rows for inference and training of one model in one precision, and its layer breakdown."""
    import keras

    from islesbench.models import build_from_config
    from islesbench.models.losses import get_loss
    from islesbench.models.matmul_gradients import resolve as resolve_weight_gradients
    from islesbench.runtime import precision as precisions
    from islesbench.training.compile import cosine_adamw

    config, shape, batch, slices_per_sample = model_setup(arch, profile, args)
    keras.utils.set_random_seed(0)
    with precisions.policy(precision):
        model = build_from_config(config.model, args.channels, shape[-2])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, *shape)).astype("float32")
    y = (rng.random((batch, *shape[:-1], 1)) < 0.05).astype("float32")
    macs = forward_macs(model, x[:1])
    rows = []
    infer = time_steps(lambda: model.predict_on_batch(x), args.steps, args.warmup)
    # islesbench's optimizer (a fused AdamW update on TensorFlow), so the step is the one training runs
    model.compile(optimizer=cosine_adamw(1e-4, 1e-4, total_steps=1000), loss=get_loss("focal"))
    train = time_steps(lambda: model.train_on_batch(x, y), args.steps, args.warmup)
    weight_gradients = (resolve_weight_gradients(config.model.weight_gradients, precision, config.model.encoder_width)
                        if arch == "pspnet" else "")
    for mode, seconds, factor in (("inference", infer, 1), ("training", train, 3)):
        flops = 2 * macs * factor * batch
        rows.append({
            "model": arch, "profile": profile, "size": shape[-2], "width": _width(config), "mode": mode,
            "batch": batch, "precision": precision, "weight_gradients": weight_gradients,
            "gmac_per_slice": round(macs / slices_per_sample / 1e9, 3),
            "s_per_step": round(seconds, 4), "slices_per_s": round(batch * slices_per_sample / seconds, 2),
            "gflop_per_s": round(flops / seconds / 1e9, 1),
        })
    shares = layer_breakdown(model, x, y) if args.breakdown else None
    del model
    keras.backend.clear_session()
    return rows, shares


def _width(config) -> str:
    m = config.model
    return f"encoder x{m.encoder_width:g}" if m.arch == "pspnet" else f"base {m.base_width}, depth {m.depth}"


def profiled_ops(step, calls: int = 1) -> list:
    """[(op name, op type, picoseconds)] of every op TensorFlow ran (after Grappler's rewrites) in `calls`
    calls of `step()`, read from its profiler; traced steps should have run once before."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(calls):
            step()
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as f:
            space.ParseFromString(f.read())
    ops = []
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" not in name or "__inference" in name:
                    continue  # not an op but a function call
                op_name, op_type = name.rsplit(":", 1)
                if op_type in ("Process", "Run"):
                    continue  # the executor's own spans, which contain the ops
                ops.append((op_name, op_type, event.duration_ps))
    return ops


def layer_breakdown(model, x, y, steps: int = 3) -> dict:
    """{layer type: share of the op time} over `steps` profiled training steps."""
    kinds = {}
    for layer in model.layers:
        kind = type(layer).__name__
        if max(getattr(layer, "dilation_rate", (1,)) or (1,)) > 1:
            kind += " (dilated)"
        kinds[layer.name] = kind
    totals = collections.Counter()
    for op_name, op_type, duration in profiled_ops(lambda: model.train_on_batch(x, y), steps):
        totals[_kind_of(op_name, op_type, kinds)] += duration
    total = sum(totals.values()) or 1
    return {kind: v / total for kind, v in totals.most_common()}


def _kind_of(op_name: str, op_type: str, kinds: dict) -> str:
    """The layer type an op belongs to (Keras names ops `<model>/<layer>_<n>/...`), else optimizer/loss/other."""
    for part in op_name.split("/"):
        layer = re.sub(r"_\d+$", "", part)
        if layer in kinds:
            return kinds[layer]
        if part in kinds:
            return kinds[part]
    lowered = op_name.lower()
    if "adamw" in lowered or "optimizer" in lowered or op_type.startswith(("Assign", "ResourceApply")):
        return "optimizer"
    if "loss" in lowered or "focal" in lowered:
        return "loss"
    return f"other ({op_type})"


def probe_dilated_conv(args) -> list:
    """GFLOP/s of one 3×3 conv (256→256 ch, 32×32, batch 4) at dilation 1, 2, 4, forward + backward."""
    import keras
    import tensorflow as tf

    rows = []
    x = tf.random.normal((4, 32, 32, 256))
    for rate in (1, 2, 4):
        conv = keras.layers.Conv2D(256, 3, padding="same", dilation_rate=rate)
        conv.build(x.shape)

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(conv(x))
            return tape.gradient(loss, [x, conv.kernel])

        seconds = time_steps(lambda: [t.numpy() for t in step(x)], args.steps * 3, 1)
        flops = 3 * 2 * 4 * 32 * 32 * 256 * 9 * 256
        rows.append({"dilation": rate, "ms": round(seconds * 1e3, 2), "gflop_per_s": round(flops / seconds / 1e9, 1)})
    return rows


def probe_weight_gradients(args) -> list:
    """GFLOP/s of the paper PSPNet's large weight gradients (batch 16, 32², bfloat16) three ways.

    Conv2DBackpropFilter (oneDNN's kernel, what training runs) against the forward convolution of the same
    shapes and, for the 1×1 convolutions (most of ResNet-50's FLOPs), against the same contraction written
    as one matmul, x(N·H·W, C_in)ᵀ · dy(N·H·W, C_out): where the kernel is slower than the matmul, the
    weight gradients hold the training step down, not the arithmetic.
    """
    import tensorflow as tf

    rows = []
    shapes = ((1, 1024, 2048), (1, 2048, 512), (1, 512, 2048), (3, 512, 512), (3, 4096, 512))
    for taps, cin, cout in shapes:
        x = tf.cast(tf.random.normal((16, 32, 32, cin)), tf.bfloat16)
        dy = tf.cast(tf.random.normal((16, 32, 32, cout)), tf.bfloat16)
        w = tf.cast(tf.random.normal((taps, taps, cin, cout)), tf.bfloat16)
        forms = {
            "forward": tf.function(lambda x, w: tf.nn.conv2d(x, w, 1, "SAME")),
            "weight_grad": tf.function(lambda x, dy: tf.compat.v1.nn.conv2d_backprop_filter(
                x, [taps, taps, cin, cout], dy, [1, 1, 1, 1], "SAME")),
        }
        if taps == 1:
            forms["matmul"] = tf.function(lambda x, dy: tf.matmul(
                tf.reshape(x, (-1, cin)), tf.reshape(dy, (-1, cout)), transpose_a=True))
        flops = 2 * 16 * 32 * 32 * taps * taps * cin * cout
        row = {"conv": f"{taps}x{taps} {cin}->{cout}"}
        for form, fn in forms.items():
            a, b = (x, w) if form == "forward" else (x, dy)
            seconds = time_steps(lambda: fn(a, b).numpy(), args.steps, 1)
            row[form] = round(flops / seconds / 1e9, 1)
        rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["pspnet", "unet", "vnet"])
    parser.add_argument("--profiles", nargs="+", default=["quick", "paper"], choices=["quick", "paper"])
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS),
                        choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--batch", type=int, default=None, help="override the batch (default: see above)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement (the best counts)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (tracing)")
    parser.add_argument("--channels", type=int, default=5)
    parser.add_argument("--weight-gradients", default="auto", choices=["auto", "native", "matmul"],
                        help="the PSPNet's ModelConfig.weight_gradients (islesbench/models/matmul_gradients.py)")
    parser.add_argument("--breakdown", action="store_true", help="profile each training step by layer type")
    parser.add_argument("--probe", action="store_true", help="also time plain vs dilated 3x3 convs")
    parser.add_argument("--csv", help="append result rows to this CSV file")
    args = parser.parse_args(argv)
    if args.csv and os.path.exists(args.csv):
        with open(args.csv, newline="") as f:
            if next(csv.reader(f), []) != CSV_FIELDS:
                print(f"models.py: {args.csv} has other columns than this version writes; give a new file",
                      file=sys.stderr)
                return 2

    import keras
    import tensorflow as tf

    ref = matmul_rates()
    from islesbench.storage.provenance import cpu_description

    cpu_model, cpu_flags = cpu_description()
    print(f"# {cpu_model} ({' '.join(cpu_flags) or 'none of the flags that change kernels'}); "
          f"TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
          f"oneDNN {'off' if os.environ.get('TF_ENABLE_ONEDNN_OPTS') == '0' else 'on'}; 2048² matmul: "
          f"float32 {ref['float32'] / 1e9:.0f}, bfloat16 {ref['bfloat16'] / 1e9:.0f} GFLOP/s", flush=True)
    if args.probe:
        for row in probe_dilated_conv(args):
            print(f"conv3x3 256ch 32² dilation {row['dilation']}: {row['ms']} ms/step fwd+bwd, "
                  f"{row['gflop_per_s']} GFLOP/s ({100 * row['gflop_per_s'] * 1e9 / ref['float32']:.0f}% of "
                  "float32 matmul)", flush=True)
        for row in probe_weight_gradients(args):
            print(f"weight gradient, batch 16 at 32², {row['conv']}, GFLOP/s: forward {row['forward']}, "
                  f"Conv2DBackpropFilter {row['weight_grad']}"
                  + (f", as one matmul {row['matmul']}" if "matmul" in row else ""), flush=True)
    rows = []
    for profile in args.profiles:
        for name in args.models:
            for precision in args.precisions:
                # The machine may be shared: re-measure the matmuls around each model and use the means.
                before = matmul_rates()
                measured, shares = bench_model(name, profile, precision, args)
                after = matmul_rates()
                mean = {k: (before[k] + after[k]) / 2 for k in before}
                for row in measured:
                    row["matmul_f32_gflop_per_s"] = round(mean["float32"] / 1e9, 1)
                    row["matmul_bf16_gflop_per_s"] = round(mean["bfloat16"] / 1e9, 1)
                    row["pct_of_f32_matmul"] = round(100 * row["gflop_per_s"] * 1e9 / mean["float32"], 1)
                    row["pct_of_bf16_matmul"] = round(100 * row["gflop_per_s"] * 1e9 / mean["bfloat16"], 1)
                    rows.append(row)
                    print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
                if shares:
                    top = ", ".join(f"{k} {100 * v:.0f}%" for k, v in list(shares.items())[:8])
                    print(f"  training step by layer type ({name} {profile} {precision}): {top}", flush=True)
                    measured[-1]["breakdown"] = "; ".join(f"{k} {100 * v:.1f}%" for k, v in shares.items() if v >= 0.01)
    if args.csv and rows:
        from islesbench.storage.provenance import provenance

        made = provenance()
        for row in rows:
            row.update(commit=(made["commit"] or "")[:7], tree_modified=made.get("tree_modified"),
                       command=" ".join(["python", *sys.argv]), cpu_model=made["machine"]["cpu_model"],
                       cpu_flags=" ".join(made["machine"]["cpu_flags"]))
        new = not os.path.exists(args.csv)
        with open(args.csv, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, restval="")
            if new:
                writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
