"""ISLES metrics of predicted masks against reference masks, per case and aggregated.

Predictions: a folder of `<case>.nii.gz` or `<case>.nii` masks (probability maps `<case>_prob.nii*` are
ignored; a prediction that is itself a probability map is thresholded: lesion where value >= --threshold,
as `islesbench run` writes its masks). References:
either a flat folder of `<case>.nii[.gz]` masks or a cohort: an ISLES 2018 layout (the dataset root or its
TRAINING folder), whose OT files are the masks, or an ISLES'24 BIDS layout, whose ses-02 lesion masks
are (islesbench.layouts; --layout names it, else it is detected). Cases are matched by name; every prediction must have
a reference and, unless --only-predicted, every reference a prediction. Each pair must have the same
shape and affine; spacing comes from the reference header. A reference mask is zero and one positive
whole number, which is lesion; one with negative, several or fractional values ({0, 0.5}) is refused,
the file named (exit status 2).

Writes OUT/metrics.csv (one row per case) and OUT/summary.json (means, standard deviations, medians and
counts of infinite values per metric) and prints a short table. hd and assd follow --convention: `isles`
(default), the ISLES 2015–2018 evaluator's own definitions, or `medpy`; both files record which. See `islesbench.evaluation.metrics` for the
definitions and the empty-mask conventions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from islesbench.evaluation.aggregate import format_summary_table
from islesbench.evaluation.folders import METRICS_CSV, SUMMARY_JSON, evaluate_folder


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of `islesbench evaluate`."""
    parser.add_argument("--pred", required=True, type=Path, metavar="DIR", help="folder of predicted <case>.nii[.gz] masks")
    parser.add_argument(
        "--ref", required=True, type=Path, metavar="DIR",
        help="folder of reference <case>.nii[.gz] masks, or a cohort: ISLES 2018 (root or TRAINING/) or ISLES'24 BIDS",
    )
    parser.add_argument("--layout", choices=("isles2018", "isles24"), default=None,
                        help="layout of a --ref cohort; default: detected from the folder")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="where metrics.csv and summary.json go")
    parser.add_argument(
        "--threshold", type=float, default=0.5,
        help="a prediction voxel is lesion when its value is at or above this (binary masks and probability maps alike)",
    )
    parser.add_argument(
        "--convention", choices=("isles", "medpy"), default="isles",
        help="definition of hd and assd: isles = the ISLES 2015-2018 evaluator's (the challenge's numbers; "
        "default), medpy = medpy 0.5.2 with connectivity 3; recorded in metrics.csv and summary.json",
    )
    parser.add_argument(
        "--only-predicted", action="store_true",
        help="evaluate only the references that have a prediction (e.g. one fold's validation cases) "
        "instead of failing on references without one",
    )


def run_command(args) -> int:
    """Evaluate --pred against --ref, write the files into --out and print the summary table."""
    summary = evaluate_folder(
        args.pred, args.ref, args.out, threshold=args.threshold, only_predicted=args.only_predicted,
        layout=getattr(args, "layout", None), convention=getattr(args, "convention", "isles"),
    )
    print(format_summary_table(summary))
    print(f"wrote {Path(args.out) / METRICS_CSV} and {Path(args.out) / SUMMARY_JSON}")
    return 0
