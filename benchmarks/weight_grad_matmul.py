"""An experiment, not a training path: the PSPNet's step with its 1×1 weight gradients computed as matmuls.

    python benchmarks/weight_grad_matmul.py                      # paper and quick PSPNet, bfloat16
    python benchmarks/weight_grad_matmul.py --profiles paper --steps 5

`benchmarks/models.py --probe` shows oneDNN's bfloat16 weight-gradient kernel (Conv2DBackpropFilter) for
the paper PSPNet's 1×1 convolutions at 38–47 % of the rate of the same contraction written as
one matmul, x(N·H·W, C_in)ᵀ · dy(N·H·W, C_out). This script asks what that is worth for a whole training
step: it times the PSPNet's training step as islesbench trains it, then again with every 1×1 `Conv2D`
computing its gradients by hand on TensorFlow (weights: that matmul; bias: a ones-vector matmul; inputs:
Conv2DBackpropInput, as before). Those gradients sum in another order, so the trained weights would not
be bit-identical, which is why this lives here and not in the models (README, Precision).
The patch is undone before the script returns; nothing else imports this file.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository: benchmarks/
from benchmarks import models as model_bench  # noqa: E402  (the same model set-up and timing as models.py)


def matmul_weight_grad_call(original):
    """A `Conv2D.call` that gives 1×1 convolutions hand-written gradients; other kernels go to `original`."""
    import tensorflow as tf

    def call(self, inputs):
        if tuple(self.kernel_size) != (1, 1) or self.groups != 1 or self.data_format != "channels_last":
            return original(self, inputs)
        stride = self.strides[0]
        padding = self.padding.upper()
        cin, cout = self.kernel.shape[-2], self.kernel.shape[-1]

        @tf.custom_gradient
        def conv(x, w, *bias):
            y = tf.nn.conv2d(x, w, stride, padding)
            if bias:
                y = tf.nn.bias_add(y, bias[0])

            def grad(dy):
                x_used = x[:, ::stride, ::stride, :] if stride > 1 else x  # a 1×1 kernel reads these pixels
                dy_2d = tf.reshape(dy, (-1, cout))
                dw = tf.matmul(tf.reshape(x_used, (-1, cin)), dy_2d, transpose_a=True)
                dx = tf.compat.v1.nn.conv2d_backprop_input(tf.shape(x), w, dy, [1, stride, stride, 1], padding)
                grads = [dx, tf.reshape(dw, tf.shape(w))]
                if bias:
                    ones = tf.ones((1, tf.shape(dy_2d)[0]), dy.dtype)
                    grads.append(tf.reshape(tf.matmul(ones, dy_2d), (cout,)))
                return grads

            return y, grad

        args = [inputs, tf.cast(self.kernel, self.compute_dtype)]
        if self.use_bias:
            args.append(tf.cast(self.bias, self.compute_dtype))
        return conv(*args)

    return call


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", nargs="+", default=["paper", "quick"], choices=["quick", "paper"])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement (the best counts)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    args.channels, args.batch, args.breakdown = 5, None, False

    import keras

    from islesbench.storage.provenance import provenance

    made = provenance()
    machine = made["machine"]
    print(f"# commit {(made['commit'] or 'unknown')[:7]}{' (tree modified)' if made.get('tree_modified') else ''}, "
          f"{machine['cpu_model']}, {machine['cpus']} CPUs, {' '.join(machine['cpu_flags']) or 'no AMX / AVX-512 BF16'}",
          flush=True)
    original = keras.layers.Conv2D.call
    for profile in args.profiles:
        seconds = {}
        for form in ("oneDNN", "matmul"):
            keras.layers.Conv2D.call = matmul_weight_grad_call(original) if form == "matmul" else original
            try:
                rows, _ = model_bench.bench_model("pspnet", profile, "mixed_bfloat16", args)
            finally:
                keras.layers.Conv2D.call = original
            train = rows[1]
            seconds[form] = train["s_per_step"]
            share = 100 * train["gflop_per_s"] * 1e9 / model_bench.matmul_flops_per_s("bfloat16")
            print(f"pspnet {profile} bfloat16, batch {train['batch']}, 1×1 weight gradients by {form}: "
                  f"{train['s_per_step']} s a training step, {train['gflop_per_s']} GFLOP/s, "
                  f"{share:.1f} % of a 2048² bfloat16 matmul timed right after", flush=True)
        print(f"  matmul / oneDNN step time: {seconds['matmul'] / seconds['oneDNN']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
