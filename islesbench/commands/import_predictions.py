"""Predictions made elsewhere as a row of the report: `islesbench import`.

--pred is nnU-Net's model folder (fold_<k>/validation/<case>.nii.gz inside, e.g.
nnUNet_results/Dataset501_ISLES/nnUNetTrainer__nnUNetPlans__2d) or a flat folder of <case>.nii.gz;
binary masks (0/1), or probability maps with --probabilities (lesion where >= --threshold). --data is
the prepared directory whose folds the predictions were made on (the one `islesbench export` used):
every validation case of every claimed fold (--folds, default all) must be predicted, a fold folder
may hold only its own fold's cases, and each file must have its reference's shape and affine; anything
else is refused with one line naming the file. Metrics are `islesbench evaluate`'s against the cohort's
masks (ISLES convention). The result is OUT/NAME in the results layout, with a config.json saying it is
external (its source, the folds it claims, no training configuration): `islesbench report OUT` shows it
like any row, its paired tests against every other row labelled cross-framework comparisons, and the
benchmark's ensemble uses it only when --members names it.
"""

from __future__ import annotations

from islesbench.config import parse_fold
from islesbench.errors import IslesbenchError
from islesbench.inference.external import import_predictions, imported_rows
from islesbench.storage.manifest import PreparedData


def configure_parser(parser) -> None:
    parser.add_argument("--name", required=True, help="the row's name (run folder OUT/NAME), e.g. nnunet-2d")
    parser.add_argument("--pred", required=True, help="nnU-Net model folder (fold_<k>/validation/) or flat folder")
    parser.add_argument("--data", required=True, help="the prepared directory the predictions' folds come from")
    parser.add_argument("--out", default="runs", help="runs folder")
    parser.add_argument("--probabilities", action="store_true", help="the files are probability maps in [0, 1]")
    parser.add_argument("--threshold", type=float, default=0.5, help="lesion where a probability is >= this")
    parser.add_argument("--folds", default="all", help="the folds the predictions claim: `all` or e.g. 0,1,2")
    parser.add_argument("--description", default="", help="what made the predictions (recorded in config.json)")
    parser.add_argument("--force", action="store_true", help="redo imported folds, replace another import")


def _folds(text: str):
    if text == "all":
        return "all"
    folds = [parse_fold(part.strip(), option="--folds") for part in text.split(",") if part.strip()]
    if not folds or "all" in folds:
        raise IslesbenchError(f"--folds {text!r}: expected `all` or fold numbers such as 0,1,2")
    return folds


def run_command(args) -> int:
    prepared = PreparedData(args.data)
    run_root = import_predictions(args.name, args.pred, prepared, args.out, probabilities=args.probabilities,
                                  threshold=args.threshold, folds=_folds(args.folds), description=args.description,
                                  force=args.force)
    rows = imported_rows(run_root)
    dice = [r["dice"] for r in rows]
    print(f"{args.name}: {len(rows)} case(s), mean Dice {sum(dice) / max(len(dice), 1):.3f} -> {run_root}")
    return 0
