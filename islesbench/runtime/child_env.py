"""The environment of an islesbench child process (a test's CLI call, a robustness driver's worker).

One owner, because every child must start the same way: TensorFlow's C++ start-up lines hidden,
output unbuffered (a parent reads it line by line, and a killed child must not lose what it printed),
CPU only, and no distributed role inherited from the parent (TF_CONFIG, KerasTuner's oracle variables),
which would make a plain child wait for peers that never come.
"""

from __future__ import annotations

import os

INHERITED_ROLES = ("TF_CONFIG", "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def child_env(**extra) -> dict:
    """A copy of this process's environment for a quiet, CPU-only, stand-alone child; `extra` is set last."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    for key in INHERITED_ROLES:
        env.pop(key, None)
    env.update(extra)
    return env
