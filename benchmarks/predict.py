"""Time `islesbench predict` on one 256x256x16 case with a trained PSPNet, U-Net and V-Net (goal <= 2 s).

    python benchmarks/predict.py [--work /tmp/islesbench-bench-predict] [--profile quick|paper]
                                 [--precision auto|float32|mixed_bfloat16] [--archs pspnet ...]

Trains nothing: it builds each model as its profile configures it, saves it as a fold checkpoint with a
config.json beside it (what a trained fold looks like to `predict`), makes one synthetic 16-slice case at
256x256, and times the prediction of that case as the command runs it (read, validate, normalise,
resample, predict, undo, write), after one warm-up call: the best of 3 calls. The model is built in
`--precision` (train.precision's values; auto resolves as a run would), which is what predict computes in.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from islesbench.config import PRECISIONS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/islesbench-bench-predict")
    parser.add_argument("--profile", default="quick", choices=("quick", "paper"))
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--archs", nargs="+", default=["unet", "pspnet", "vnet"])
    args = parser.parse_args()

    import numpy as np

    from islesbench import layouts
    from islesbench.config import profile_config
    from islesbench.data_prep.synth import make_patient
    from islesbench.inference.predictor import Predictor
    from islesbench.models import build_from_config
    from islesbench.runtime import precision

    work = Path(args.work)
    patient = make_patient([7, 7], 256, slabs=1, lesion_kind="core")
    case_dir = work / "case_1"
    depth = patient.maps["CT_CBF"].shape[2]
    slices = np.arange(16) % depth  # 16 slices, as the benchmark asks (the timing depends on shape only)
    for mod in layouts.isles2018.MAP_MODALITIES:
        data = patient.maps[mod][:, :, slices]
        layouts.save_nifti(case_dir / f"SMIR.Brain.XX.O.{mod}.{100 + len(mod)}" / f"SMIR.Brain.XX.O.{mod}.{100 + len(mod)}.nii",
                         data, patient.slab_affine(0))
    case = layouts.discover_cohort(case_dir)[0]
    print(f"case: {layouts.load_case(case, with_mask=False).shape} at 256x256")
    resolved = precision.resolve(args.precision)
    for arch in args.archs:
        config = profile_config(args.profile, arch)
        fold = work / arch / "fold_0"
        fold.mkdir(parents=True, exist_ok=True)
        with precision.policy(resolved):
            model = build_from_config(config.model, len(config.data.modalities), config.data.input_size)
        model.save(fold / "checkpoint_best.keras")
        config.save(fold / "config.json", fold=0, grid=256)
        predictor = Predictor.load(fold / "checkpoint_best.keras")
        loaded = layouts.load_case(case, modalities=predictor.modalities, with_mask=False)
        predictor.probability(loaded.volumes)  # warm-up: traces the predict function
        seconds = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            c = layouts.load_case(case, modalities=predictor.modalities, with_mask=False)
            prob = predictor.probability(c.volumes)
            layouts.save_nifti(work / f"{arch}_pred.nii.gz", (prob >= 0.5).astype(np.uint8), c.affine, c.spacing,
                             dtype=np.uint8)
            seconds = min(seconds, time.perf_counter() - t0)
        print(f"{arch:<7} ({args.profile}, input {config.data.input_size}, {resolved}): {seconds:.2f} s per "
              "256x256x16 case "
              f"({'meets' if seconds <= 2 else 'misses'} the 2 s goal)")


if __name__ == "__main__":
    main()
