"""Segment ISLES-layout cases with a trained model: `islesbench predict`.

`--model` is a checkpoint (`.keras`, its fold folder's config.json and threshold.json are used when
present) or a run folder, whose finished folds' checkpoint_last models are averaged (a fold ensemble).
`--input` is one case folder or a TRAINING/TESTING folder; no `OT` is needed. Masks (and with
--probabilities the probability maps) are written as NIfTI with exactly the input's shape and affine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from islesbench import inference, isles, layouts, preprocessing, results
from islesbench.training import load_checkpoint
from islesbench.errors import IslesbenchError


def configure_parser(parser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint .keras file or run folder")
    parser.add_argument("--input", required=True, help="one ISLES case folder, or a TRAINING/TESTING folder")
    parser.add_argument("--out", required=True, help="output folder, or a .nii/.nii.gz file for a single case")
    parser.add_argument("--probabilities", action="store_true", help="also write <case>_prob.nii.gz")
    parser.add_argument("--threshold", type=float, default=None, help="override the stored threshold")
    layouts.add_layout_argument(parser)


def run_command(args) -> int:
    predictor = Predictor.load(args.model)
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


def probability_in_stored_geometry(predictor, case) -> np.ndarray:
    """The predictor's probability map for a loaded case, in the case's stored shape and voxel order.

    The volumes go to the canonical orientation and, when the run's data were resampled to a slice
    spacing (config `slice_mm`), to that slice count, as prepare did; the map comes back the same way.
    """
    sampling = preprocessing.plan_sampling(case.shape, case.affine, case.spacing, predictor.grid,
                                           predictor.config.get("slice_mm"))
    canonical = {m: preprocessing.to_canonical_volume(v, sampling) for m, v in case.volumes.items()}
    prob = predictor.probability(canonical)
    return np.clip(preprocessing.from_canonical_volume(prob, sampling), 0.0, 1.0).astype(np.float32)


class Predictor:
    """One model or a fold ensemble, with the geometry and threshold its run used."""

    def __init__(self, models, config: dict, threshold: float):
        self.models, self.config, self.threshold = models, config, threshold
        self.arch = config["model"]["arch"]
        self.modalities = tuple(config["data"]["modalities"]) if self.arch != "threshold" else ("CT_CBF", "CT")
        self.grid = int(config.get("grid", 256))

    @classmethod
    def load(cls, model_path) -> "Predictor":
        """From a .keras checkpoint (with its fold folder's config) or a run folder (all finished folds)."""
        path = Path(model_path)
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise IslesbenchError(f"{path}: not a run folder (no config.json)")
            config = json.loads((path / "config.json").read_text())
            folds = [p for _, p in results.list_folds(path) if p.is_done()]
            if not folds:
                raise IslesbenchError(f"{path}: no finished fold to predict with")
            if config["model"]["arch"] == "threshold":
                return cls([], config, 0.5)
            models = [load_checkpoint(p.checkpoint_last) for p in folds]
            thresholds = [_stored_threshold(p.threshold_json) for p in folds]
            return cls(models, config, float(np.mean(thresholds)))
        if not path.is_file():
            raise IslesbenchError(f"--model {path} does not exist")
        config_file = path.parent / "config.json"
        if not config_file.is_file():
            raise IslesbenchError(f"{path}: no config.json beside the checkpoint; predict needs the run's "
                                  "modalities and grid (pass the fold or run folder's checkpoint)")
        config = json.loads(config_file.read_text())
        model = load_checkpoint(path)
        return cls([model], config, _stored_threshold(path.parent / "threshold.json"))

    def probability(self, volumes: dict) -> np.ndarray:
        """Mean probability (X, Y, Z) of the models on one case's raw volumes."""
        if self.arch == "threshold":
            from islesbench import threshold

            return threshold.core_mask(volumes).astype(np.float32)
        from islesbench.models import is_3d

        return inference.predict_case_arrays(self.models, volumes, self.modalities, self.grid, is_3d(self.arch))


def _stored_threshold(path: Path) -> float:
    return float(json.loads(Path(path).read_text())["threshold"]) if Path(path).is_file() else 0.5
