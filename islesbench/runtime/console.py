"""What a user sees on the console: TensorFlow's start-up lines hidden, one line naming device and precision.

TensorFlow 2.21 writes its start-up lines from C++ (absl) straight to file descriptor 2, before Python
logging exists and regardless of TF_CPP_MIN_LOG_LEVEL: "WARNING: All log messages before
absl::InitializeLog() ...", `I0000 ... port.cc] oneDNN custom operations are on ...`, `I0000 ...
cudart_stub.cc] Could not find cuda drivers ...` (each twice, once per TensorFlow library), the CPU
feature guard's two lines, and `E0000 ... cuda_platform.cc] failed call to cuInit` on a machine without
a GPU. So the console script routes fd 2 through a pipe and drops exactly those lines; everything else
(warnings, errors, tracebacks) passes unchanged. `--verbose` leaves fd 2 alone.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

from islesbench.runtime import precision

# Commands that run models: they print which device and precision they use.
DEVICE_COMMANDS = ("run", "predict", "tune", "benchmark", "pretrain")

STARTUP_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|I\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] "  # absl INFO lines (oneDNN, cudart stub, CPU features)
    rb"|E\d{4} [\d:.]+ +\d+ cuda_[\w]+\.cc:\d+\] failed call to cuInit"  # no GPU here: expected
    rb"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\."
    rb")")

_filter = None


def is_startup_noise(line: bytes) -> bool:
    """True for a TensorFlow start-up line that is hidden by default."""
    return bool(STARTUP_NOISE.match(line.lstrip(b"\r")))


class _Fd2Filter:
    """fd 2 -> pipe -> a thread that forwards every line but TensorFlow's start-up noise to the real fd 2."""

    def __init__(self):
        sys.stderr.flush()
        self.real = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.read_end = read_end
        self.thread = threading.Thread(target=self._pump, name="islesbench-stderr", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.read_end, 65536)
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            out = b"".join(line + b"\n" for line in lines if not is_startup_noise(line))
            if out:
                self._write(out)
        if pending and not is_startup_noise(pending):
            self._write(pending)
        os.close(self.read_end)

    def _write(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self.real, data):]
        except OSError:
            pass

    def close(self) -> None:
        """Restore fd 2 and let the thread forward what is left."""
        try:
            sys.stderr.flush()
        except Exception:  # a closed stderr at exit: nothing left to flush
            pass
        os.dup2(self.real, 2)  # drops this process's write end: the pump sees EOF
        self.thread.join(timeout=5)


def quiet_tensorflow(verbose: bool = False) -> None:
    """Hide TensorFlow's start-up lines for the rest of this process (once; not with `verbose`)."""
    global _filter
    if verbose or _filter is not None:
        return
    try:
        os.fstat(2)
    except OSError:
        return  # no stderr at all
    _filter = _Fd2Filter()
    atexit.register(_filter.close)


def device_line() -> str:
    """'device CPU (2 cores; no GPU visible), precision mixed_bfloat16 (auto: …) …' or the GPUs' names."""
    import tensorflow as tf


    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            try:
                names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
            except Exception:  # details are best effort; the device is still used
                names.append(gpu.name)
        device = f"{len(gpus)} GPU(s) ({', '.join(dict.fromkeys(names))})"
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        device = f"CPU ({cores} cores; no GPU visible)"
    return f"device {device}, precision {precision.describe('auto')} by default"
