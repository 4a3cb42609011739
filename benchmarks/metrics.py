"""Time `islesbench.metrics.case_metrics` (the full metric set) under each HD/ASSD convention against
medpy's hd, hd95 and assd.

medpy 0.5.2 is called the way a user would call it, once per metric, with the same full 3×3×3
surface neighbourhood (``connectivity=3``) so the values are comparable; each call erodes both masks
and runs two distance transforms over the whole volume. Our full set (Dice, precision, recall, hd,
hd95, assd, assd_pooled, NSD at 1 and 2 mm, AVD, volumes, ISLES'22 and ISLES'24 lesion metrics) crops
to the masks; under the isles convention it also computes the ISLES evaluator's HD and ASSD (two more
distance transforms per direction) on top of medpy's hd95 and assd_pooled.

    python benchmarks/metrics.py [--repeats 3] [--seed 0]

Prints the timings (best of --repeats, seconds), the speed-up of each convention's full set over
medpy's three calls (goal >= 10x), and whether the medpy convention's values equal medpy's.
Exit status 1 if any value differs or a speed-up misses the goal.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy import ndimage

from islesbench.metrics import CONVENTIONS, case_metrics

SPEED_UP_GOAL = 10.0

# (name, shape, spacing in mm): an ISLES 2018 slab and a thin-slice whole-brain CT.
CASES = (
    ("256x256x16", (256, 256, 16), (0.9, 0.9, 5.0)),
    ("512x512x74", (512, 512, 74), (0.45, 0.45, 2.0)),
)


def irregular_blob(shape, spacing, centre_mm, radii_mm, rng, roughness=0.35) -> np.ndarray:
    """An ellipsoid whose boundary is perturbed by smooth noise: a lobulated, lesion-like blob."""
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    r2 = sum(((g * s - c) / r) ** 2 for g, s, c, r in zip(grid, spacing, centre_mm, radii_mm))
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=[6.0 / s for s in spacing])
    noise /= noise.std() + 1e-12
    return r2 < 1.0 + roughness * noise


def synthetic_case(shape, spacing, rng) -> tuple[np.ndarray, np.ndarray]:
    """A reference with a main lesion and two satellites, and a plausible imperfect prediction of it.

    The prediction under-segments the border, misses the small satellite(s) and adds a small false
    positive blob a few centimetres away, so every metric (including lesion-wise counts) is exercised.
    """
    extent = np.array(shape) * np.array(spacing)
    centre = extent * np.array([0.35, 0.55, 0.5])
    main = (extent[0] * 0.09, extent[1] * 0.07, min(extent[2] * 0.25, 25.0))
    ref = irregular_blob(shape, spacing, centre, main, rng)
    satellite_1 = centre + np.array([main[0] * 1.8, -main[1] * 0.6, 0.0])
    satellite_2 = centre + np.array([-main[0] * 0.5, main[1] * 1.9, 0.0])
    ref |= irregular_blob(shape, spacing, satellite_1, np.array(main) * 0.35, rng)
    small = irregular_blob(shape, spacing, satellite_2, np.array(main) * 0.2, rng, roughness=0.1)
    ref |= small

    pred = ndimage.binary_erosion(ref & ~small, iterations=1) | irregular_blob(
        shape, spacing, centre + np.array([3.0, -2.0, 0.0]), np.array(main) * 0.9, rng
    )
    fp_centre = centre + np.array([-main[0] * 2.5, -main[1] * 1.5, 0.0])
    pred |= irregular_blob(shape, spacing, fp_centre, np.array(main) * 0.25, rng, roughness=0.1)
    return pred, ref


def medpy_three_calls(pred, ref, spacing) -> dict:
    """medpy's hd, hd95 and assd (pooled), each called separately with the full neighbourhood."""
    from medpy.metric import binary

    connectivity = ref.ndim
    return {
        "hd": binary.hd(pred, ref, spacing, connectivity),
        "hd95": binary.hd95(pred, ref, spacing, connectivity),
        "assd_pooled": binary.assd(pred, ref, spacing, connectivity),
    }


def best_time(fn, repeats: int):
    """(best wall time over `repeats` calls, the last result)."""
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per method; the best is kept")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    ok = True
    for name, shape, spacing in CASES:
        rng = np.random.default_rng(args.seed)
        pred, ref = synthetic_case(shape, spacing, rng)
        t_medpy, theirs = best_time(lambda: medpy_three_calls(pred, ref, spacing), args.repeats)
        results = {}
        for convention in CONVENTIONS:
            results[convention] = best_time(lambda: case_metrics(pred, ref, spacing, convention), args.repeats)
        medpy_rows = results["medpy"][1]
        identical = all(medpy_rows[k] == float(v) for k, v in theirs.items())
        max_diff = max(abs(medpy_rows[k] - float(v)) for k, v in theirs.items())
        ok &= identical
        isles = results["isles"][1]
        print(
            f"{name} spacing={spacing} ref={int(ref.sum())} vox ({isles['lesion_tp'] + isles['lesion_fn']} lesions) "
            f"pred={int(pred.sum())} vox: dice={isles['dice']:.4f} hd isles/medpy={isles['hd']:.3f}/"
            f"{medpy_rows['hd']:.3f} assd isles/medpy={isles['assd']:.4f}/{medpy_rows['assd']:.4f} "
            f"nsd@1/2mm={isles['nsd_1mm']:.3f}/{isles['nsd_2mm']:.3f} lesions tp/fp/fn={isles['lesion_tp']}/"
            f"{isles['lesion_fp']}/{isles['lesion_fn']}"
        )
        print(f"  medpy hd+hd95+assd: {t_medpy:.4f} s; medpy convention identical to medpy: {identical} "
              f"(max |diff| {max_diff:.3g})")
        for convention, (seconds, _) in results.items():
            ratio = t_medpy / seconds
            ok &= ratio >= SPEED_UP_GOAL
            print(f"  islesbench full set, {convention} convention: {seconds:.4f} s   speed-up: {ratio:.1f}x "
                  f"(goal >= {SPEED_UP_GOAL:g}x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
