"""Segment ISLES-layout cases with a trained model: `islesbench predict`.

`--model` is a checkpoint (`.keras`, its fold folder's config.json and threshold.json are used when
present), a fold folder (its checkpoint_last), a run folder, whose finished folds' checkpoint_last models
are averaged (a fold ensemble), or an ensemble folder written by `islesbench ensemble` or `benchmark`,
whose member runs' fold models are averaged member by member and thresholded at the ensemble's threshold.
`--input` is one case folder or a TRAINING/TESTING folder; no `OT` is needed. Masks (and with
--probabilities the probability maps) are written as NIfTI with exactly the input's shape and affine.
"""

from __future__ import annotations

import time
from pathlib import Path

from islesbench import layouts
from islesbench.config import PRECISIONS
from islesbench.errors import IslesbenchError
from islesbench.inference.predictor import Predictor, probability_in_stored_geometry


def configure_parser(parser) -> None:
    parser.add_argument("--model", required=True,
                        help="checkpoint .keras file, fold folder, run folder, or ensemble folder")
    parser.add_argument("--input", required=True, help="one ISLES case folder, or a TRAINING/TESTING folder")
    parser.add_argument("--out", required=True, help="output folder, or a .nii/.nii.gz file for a single case")
    parser.add_argument("--probabilities", action="store_true", help="also write <case>_prob.nii.gz")
    parser.add_argument("--threshold", type=float, default=None, help="override the stored threshold")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="compute in this precision instead of the one the model was trained in")
    layouts.add_layout_argument(parser)


def run_command(args) -> int:
    predictor = Predictor.load(args.model)
    if args.precision is not None:
        predictor.set_precision(args.precision)
    cases = layouts.discover_cohort(args.input, getattr(args, "layout", None))
    out = Path(args.out)
    single_file = out.name.endswith((".nii", ".nii.gz"))
    if single_file and len(cases) != 1:
        raise IslesbenchError(f"--out {out} is a file but --input holds {len(cases)} cases; give a folder")
    threshold = predictor.threshold if args.threshold is None else args.threshold
    for i, case_files in enumerate(cases, 1):
        t0 = time.time()
        # load_case checks the files as it reads them and raises one line naming case, file and fault
        case = layouts.load_case(case_files, modalities=predictor.modalities, with_mask=False)
        prob = probability_in_stored_geometry(predictor, case)
        target = out if single_file else out / layouts.prediction_name(case.case_id)
        layouts.write_prediction(target, prob >= threshold, case.affine, case.spacing)
        if args.probabilities:
            stem = target.name.split(".nii")[0]
            layouts.write_prediction(target.with_name(f"{stem}_prob.nii.gz"), prob, case.affine, case.spacing,
                                     probabilities=True)
        print(f"[predict {i}/{len(cases)}] {case.case_id}: {int((prob >= threshold).sum())} lesion voxels, "
              f"{time.time() - t0:.2f} s -> {target}", flush=True)
    return 0
