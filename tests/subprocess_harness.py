"""What the kill-and-resume tests share: the child environment and a child that dies at a chosen commit."""

import os


def child_env(**extra) -> dict:
    """The environment of an islesbench child process: quiet TensorFlow, unbuffered, CPU, no TF_CONFIG."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


# Dies by SIGKILL exactly when history.csv is about to be replaced for the 3rd time, i.e. after the
# 3rd epoch's checkpoint exists and before its history row is visible (the window a random kill rarely hits).
KILL_AT_HISTORY_WRITE = """
import os, signal, sys
real_replace, seen = os.replace, []
def replace(src, dst, *a, **k):
    if os.path.basename(str(dst)) == "history.csv":
        seen.append(dst)
        if len(seen) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *a, **k)
os.replace = replace
from islesbench.cli import main
sys.exit(main(sys.argv[1:]))
"""
