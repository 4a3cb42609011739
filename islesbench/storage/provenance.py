"""What produced a result: the commit (and whether the working tree had changes), the command line,
the package versions and the machine. Recorded in benchmark.json and in every run's config.json, so a
committed number can always be traced to the code that made it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

from islesbench import __version__


def provenance() -> dict:
    """What produced a result: the commit (and whether the tree had changes), the command, versions."""

    def git(*argv):
        try:
            return subprocess.run(["git", *argv], cwd=Path(__file__).resolve().parent, capture_output=True,
                                  text=True, timeout=10).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            return None

    versions = {"python": platform.python_version()}
    for module in ("tensorflow", "keras", "numpy", "scipy", "nibabel", "keras_tuner"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # a missing optional module is recorded as absent, not fatal
            versions[module] = None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"islesbench": __version__, "commit": git("rev-parse", "HEAD"), "tree_modified": bool(status),
            "command": " ".join(["islesbench", *sys.argv[1:]]) if sys.argv and "islesbench" in sys.argv[0] else None,
            "versions": versions, "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
