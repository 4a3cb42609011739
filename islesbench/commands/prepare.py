"""Validate a cohort (ISLES 2018 or ISLES'24 BIDS layout) and write slice/volume TFRecords, the manifest and patient-grouped folds.

Every case is validated first; without --skip-bad any fault stops the run before anything is written,
listing all faults at once. Each case is written to temporary names and renamed, its manifest entry last,
so a re-run skips cases whose records are complete and whose inputs are unchanged, and a killed run
continues where it stopped. Cases are streamed one at a time, and each case one channel at a time
(read, normalised, reoriented, resampled, dropped), so a whole-brain cohort fits in a few GiB. See
islesbench.layouts for the layouts, islesbench.imaging.preprocessing for the normalisation and resampling, and
islesbench.storage.manifest for the layout written.
"""

from __future__ import annotations

from islesbench import layouts
from islesbench.config import DEFAULT_MODALITIES
from islesbench.data_prep.prepare import prepare_cohort


def configure_parser(parser) -> None:
    parser.add_argument("--data", required=True, help="raw cohort: ISLES 2018 (TRAINING/, TESTING/) or ISLES'24 BIDS")
    layouts.add_layout_argument(parser)
    parser.add_argument("--slice-mm", type=float, default=None,
                        help="slice spacing (mm) to resample to; default: the layout's (ISLES 2018: keep every "
                             "slice; ISLES'24: 4 mm)")
    parser.add_argument("--out", required=True, help="prepared directory to write")
    parser.add_argument("--folds", type=int, default=5, help="number of patient-grouped cross-validation folds")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    parser.add_argument("--skip-bad", action="store_true", help="skip malformed cases (named) instead of stopping")
    parser.add_argument("--jobs", type=int, default=1, help="cases prepared in parallel")
    parser.add_argument("--grid", type=int, default=256, help="in-plane grid side the slices are resampled to")
    parser.add_argument("--patients", default=None, help="CSV `case,patient`; default: inferred from the headers")
    parser.add_argument("--modalities", default=",".join(DEFAULT_MODALITIES), help="input channels, comma separated")


def run_command(args) -> int:
    prepare_cohort(args.data, args.out, folds=args.folds, seed=args.seed, skip_bad=args.skip_bad,
                   layout=args.layout, slice_mm=args.slice_mm,
                   jobs=args.jobs, grid=args.grid, patients_csv=args.patients,
                   modalities=tuple(m.strip() for m in args.modalities.split(",") if m.strip()))
    return 0
