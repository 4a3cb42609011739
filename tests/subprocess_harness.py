"""What the kill-and-resume tests share: a child that dies at a chosen commit (its environment:
islesbench.runtime.child_env)."""


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
