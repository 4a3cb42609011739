"""Time and peak memory of `islesbench prepare` per whole-brain ISLES'24 subject.

    python benchmarks/prepare_isles24.py [--subjects 2] [--size 512] [--work /tmp/islesbench-prepare24]

Writes (or reuses) a synthetic ISLES'24 cohort at --size in-plane (512: ISLES'24's 0.46 mm; 151 or
101 slices of 1-1.5 mm, about 40 M voxels a channel), then prepares each subject in a fresh process
(so one subject's peak is not hidden under another's) and prints its wall time and peak resident
memory (`ru_maxrss` of the child). Goal: a whole-brain subject within a few GiB, one at a time.
Measured 2026-11-26 at --size 512 on a shared, loaded 2-core machine: see README (Resampling).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_CHILD = """
import sys
from islesbench.data_prep.prepare import prepare_case, input_fingerprint
from islesbench import layouts
from islesbench.config import DEFAULT_MODALITIES
case = next(c for c in layouts.discover_cohort(sys.argv[1]) if c.case_id == sys.argv[2])
fp = input_fingerprint(case, DEFAULT_MODALITIES, 256, 4.0)
prepare_case(case, sys.argv[3], DEFAULT_MODALITIES, 256, fp, 4.0)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--work", default="/tmp/islesbench-prepare24")
    args = parser.parse_args()

    from islesbench import layouts
    from islesbench.data_prep.synth_isles24 import synthesize_isles24

    work = Path(args.work)
    cohort = work / f"cohort-{args.size}-{args.subjects}"
    if not (cohort / "synthetic_cohort.json").is_file():
        synthesize_isles24(cohort, cases=args.subjects, seed=0, size=args.size)
    out = work / "prepared"
    (out / "records").mkdir(parents=True, exist_ok=True)
    for case in layouts.discover_cohort(cohort):
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", _CHILD, str(cohort), case.case_id, str(out)], check=True)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        note = "" if peak > before else " (peak not above an earlier subject's)"
        print(f"{case.case_id}: {seconds:.1f} s wall (Python and TensorFlow start-up included), "
              f"peak RSS {peak / 1024**2:.2f} GiB{note}")


if __name__ == "__main__":
    main()
