"""The console: TensorFlow's start-up lines hidden unless --verbose, one device line, errors untouched."""

import os
import re
import subprocess
import sys

from islesbench.runtime.console import is_startup_noise

# What TensorFlow 2.21 writes to fd 2 at start-up on a machine without a GPU (each of the first five twice).
STARTUP = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"I0000 00:00:1795730077.610653    8435 port.cc:153] oneDNN custom operations are on. You may see ...",
    b"I0000 00:00:1795730077.611001    8435 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU "
    b"will not be used.",
    b"I0000 00:00:1795730077.650400    8435 cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...",
    b"To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the "
    b"appropriate compiler flags.",
    b"E0000 00:00:1795730080.697575    8435 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    b"Failed call to cuInit: UNKNOWN ERROR (303)",
]
KEPT = [
    b"islesbench predict: error: --model x does not exist",
    b"E0000 00:00:1795730080.697575    8435 cuda_executor.cc:1] out of memory allocating 4 GiB",
    b"W0000 00:00:1795730080.697575    8435 op_level_cost_estimator.cc:699] Error in PredictCost()",
    b"Traceback (most recent call last):",
    b"WARNING:tensorflow:5 out of the last 5 calls triggered tf.function retracing",
]


def test_only_the_startup_lines_are_noise():
    assert all(is_startup_noise(line) for line in STARTUP)
    assert not any(is_startup_noise(line) for line in KEPT)


def _cli(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_CONFIG")}
    return subprocess.run([sys.executable, "-m", "islesbench", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_console_shows_one_device_line_and_one_error_line(tmp_path):
    args = ["predict", "--model", str(tmp_path / "nope"), "--input", str(tmp_path), "--out", str(tmp_path / "o")]
    quiet = _cli(*args)
    assert quiet.returncode == 2
    assert quiet.stderr.splitlines() == [quiet.stderr.strip()] and "nope does not exist" in quiet.stderr
    device = [line for line in quiet.stdout.splitlines() if "device" in line]
    assert len(device) == 1 and re.search(r"precision (float32|mixed_bfloat16|mixed_float16)", device[0])
    loud = _cli(*args, "--verbose")
    assert loud.returncode == 2 and "nope does not exist" in loud.stderr
    # TensorFlow 2.21 does print them: --verbose shows what the default hid
    assert any(is_startup_noise(line.encode()) for line in loud.stderr.splitlines())
