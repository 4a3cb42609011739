"""`islesbench synth`: a synthetic CT-perfusion cohort in the ISLES 2018 layout or the ISLES'24 BIDS layout.

Both layouts come from the same physiology (synth_physiology): ISLES 2018's thin slabs with the acute
core as label (synth_isles2018), or ISLES'24's whole-brain NCCT, CTA and maps with a follow-up lesion
that grows from the acute core into the penumbra (synth_isles24). The same seed gives the same bytes.
"""

from __future__ import annotations

import time
from pathlib import Path

from islesbench.data_prep.synth import COHORT_FILE, LAYOUTS, synthesize_cohort
from islesbench.data_prep.synth_isles24 import DEFAULT_SIZE, synthesize_isles24


def configure_parser(parser) -> None:
    """Arguments of `islesbench synth`."""
    parser.add_argument("--out", required=True, metavar="DIR", help="cohort folder to write")
    parser.add_argument("--layout", choices=LAYOUTS, default="isles2018",
                        help="isles2018: TRAINING/ and TESTING/ slabs; isles24: BIDS raw_data/ and derivatives/, whole brain")
    parser.add_argument("--cases", type=int, default=20, metavar="N",
                        help="training cases (ISLES 2018: slabs; ISLES'24: subjects), with lesion masks")
    parser.add_argument("--test-cases", type=int, default=0, metavar="N", help="testing cases, without lesion masks")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed: same seed, same bytes")
    parser.add_argument("--size", type=int, default=None, metavar="N",
                        help="in-plane matrix size (default: 256 for isles2018, 160 for isles24)")


def run_command(args) -> int:
    """Run `islesbench synth`."""
    start = time.perf_counter()
    layout = getattr(args, "layout", "isles2018")
    if layout == "isles24":
        folders = synthesize_isles24(args.out, cases=args.cases, seed=args.seed, test_cases=args.test_cases,
                                     size=args.size or DEFAULT_SIZE)
    else:
        folders = synthesize_cohort(args.out, cases=args.cases, seed=args.seed, test_cases=args.test_cases,
                                    size=args.size or 256)
    print(f"synth: wrote {len(folders)} case(s) in the {layout} layout to {args.out} in "
          f"{time.perf_counter() - start:.1f}s (patients and lesion volumes in {Path(args.out) / COHORT_FILE})")
    return 0
