"""Helpers of the tuning tests: run the tiny search (unet, base width 4-8, 32-48 px, 2 steps) as the CLI."""

from __future__ import annotations

import socket
import subprocess
import sys

from islesbench.runtime.child_env import child_env


def tune_command(prepared_root, out, tune_inputs, max_trials, epochs=1, tuner="random", extra=()):
    """The `islesbench tune` argv of the tiny search."""
    base, space = tune_inputs
    return [sys.executable, "-m", "islesbench", "tune", "--arch", "unet", "--loss", "focal", "--tuner", tuner,
            "--max-trials", str(max_trials), "--folds", "2", "--data", str(prepared_root), "--out", str(out),
            "--epochs", str(epochs), "--config", str(base), "--space", str(space), *extra]


def run(argv, timeout=300, **env):
    """Run a CLI command to the end; (returncode, stdout+stderr)."""
    proc = subprocess.run(argv, env=child_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_csv(path):
    """Rows of a CSV file as dicts of strings."""
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))
