"""One training step of every architecture x profile x precision that `auto` can choose, each in its own
child process (a crash in native code, such as oneDNN's AMX 3-D kernel-gradient overflow that killed the
paper V-Net in bfloat16, ends only that child and fails its case)."""

import subprocess
import sys
from pathlib import Path

import pytest

from islesbench.runtime.child_env import child_env

MODELS_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "models.py"


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])  # what `auto` resolves to on a CPU
@pytest.mark.parametrize("profile", ["quick", "paper"])
@pytest.mark.parametrize("arch", ["pspnet", "unet", "vnet"])
def test_one_training_step_in_a_child(arch, profile, precision):
    argv = [sys.executable, str(MODELS_SCRIPT), "--models", arch, "--profiles", profile, "--precisions", precision,
            "--steps", "1", "--warmup", "0"]
    proc = subprocess.run(argv, env=child_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert f"model={arch}, profile={profile}" in proc.stdout and "mode=training" in proc.stdout
