"""Time `islesbench.evaluation.metrics.case_metrics` (the full metric set) under each HD/ASSD convention against
medpy's hd, hd95 and assd.

medpy 0.5.2 is called the way a user would call it, once per metric, with the same full 3×3×3
surface neighbourhood (``connectivity=3``) so the values are comparable; each call erodes both masks
and runs two distance transforms over the whole volume. Our full set (Dice, precision, recall, hd,
hd95, assd, assd_pooled, NSD at 1 and 2 mm, AVD, volumes, ISLES'22 and ISLES'24 lesion metrics) crops
to the masks; under the isles convention it also computes the ISLES evaluator's HD and ASSD (two more
distance transforms per direction) on top of medpy's hd95 and assd_pooled.

    python benchmarks/metrics.py [--repeats 3] [--seed 0]
    python benchmarks/metrics.py --conventions COHORT [--seed 0]

With --conventions, instead of timing: how far the isles and medpy conventions' hd and assd lie apart
on the reference masks of an ISLES-2018-layout cohort (e.g. `islesbench synth --out COHORT`) against
simple perturbations of them as predictions, per slab thickness.

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

from islesbench.evaluation.metrics import case_metrics
from islesbench.evaluation.names import CONVENTIONS

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


def perturbations(ref: np.ndarray, rng) -> dict:
    """Plausible predictions of a reference mask: the kinds of error a segmentation model makes."""
    plane = np.zeros((3, 3, 3), bool)
    plane[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    noisy = ndimage.gaussian_filter(ref.astype(float) + 0.6 * rng.standard_normal(ref.shape), (1.5, 1.5, 0.0))
    fp = np.zeros_like(ref)
    centre = [int(rng.integers(n // 4, 3 * n // 4)) for n in ref.shape[:2]]
    fp[centre[0] - 3 : centre[0] + 3, centre[1] - 3 : centre[1] + 3, :] = True
    extra_slice = ref | np.roll(ref, 1, axis=2) if ref.shape[2] > 1 else ref
    return {
        "dilated 1 voxel in plane": ndimage.binary_dilation(ref, plane),
        "eroded 1 voxel in plane": ndimage.binary_erosion(ref, plane),
        "eroded 2 voxels in plane": ndimage.binary_erosion(ref, plane, iterations=2),
        "shifted 2 voxels in plane": np.roll(ref, (2, 1), axis=(0, 1)),
        "noisy boundary": noisy > 0.5,
        "one slice thicker": extra_slice,
        "with a false positive blob": ref | (fp & ~ndimage.binary_dilation(ref, iterations=4)),
    }


def compare_conventions(cohort, seed: int) -> int:
    """Print the relative isles-vs-medpy difference of assd and hd over a cohort's perturbed masks."""
    import glob

    import nibabel as nib

    rng = np.random.default_rng(seed)
    rows, n_refs = [], 0
    for path in sorted(glob.glob(f"{cohort}/TRAINING/*/*OT*/*.nii*")):
        image = nib.load(path)
        ref = np.asanyarray(image.dataobj) != 0
        if not ref.any():
            continue
        n_refs += 1
        spacing = tuple(float(z) for z in image.header.get_zooms()[:3])
        for kind, pred in perturbations(ref, rng).items():
            if not pred.any() or np.array_equal(pred, ref):
                continue
            isles, medpy = case_metrics(pred, ref, spacing, "isles"), case_metrics(pred, ref, spacing, "medpy")
            rows.append((spacing[2], ref.shape[2], kind, isles["assd"], medpy["assd"], isles["hd"], medpy["hd"]))
    if not rows:
        print(f"no non-empty reference masks under {cohort}/TRAINING")
        return 1
    table = np.array([r[3:] for r in rows])
    thickness = np.array([r[0] for r in rows])
    assd_rel = (table[:, 0] - table[:, 1]) / table[:, 1]
    hd_rel = (table[:, 2] - table[:, 3]) / table[:, 3]
    slices = np.array([r[1] for r in rows])
    print(f"{len(rows)} prediction/reference pairs from {n_refs} non-empty references in {cohort} "
          f"({slices.min()}-{slices.max()} slices, {len(set(thickness))} slab thicknesses, "
          f"{thickness.min():g}-{thickness.max():g} mm)")
    print("relative difference (isles - medpy) / medpy:")
    for lo, hi in ((0, 99), (4, 6), (6, 9), (9, 12.01)):
        sel = (thickness >= lo) & (thickness < hi)
        if sel.any():
            label = "all" if (lo, hi) == (0, 99) else f"{lo:g}-{hi:g} mm"
            print(f"  {label:>9} (n={int(sel.sum()):3d}): assd median {np.median(assd_rel[sel]):+.1%} "
                  f"[{assd_rel[sel].min():+.1%}, {assd_rel[sel].max():+.1%}]   hd median {np.median(hd_rel[sel]):+.2%} "
                  f"[{hd_rel[sel].min():+.1%}, {hd_rel[sel].max():+.1%}]")
    for label, sel in (("3+ slices", slices >= 3), ("2 slices", slices == 2)):
        if sel.any():
            print(f"  {label:>9} (n={int(sel.sum()):3d}): assd median {np.median(assd_rel[sel]):+.1%} "
                  f"[{assd_rel[sel].min():+.1%}, {assd_rel[sel].max():+.1%}]   hd median {np.median(hd_rel[sel]):+.2%} "
                  f"[{hd_rel[sel].min():+.1%}, {hd_rel[sel].max():+.1%}]")
    medpy_vs_isles = (table[:, 1] - table[:, 0]) / table[:, 0]
    print(f"  medpy's assd relative to the isles assd, (medpy - isles) / isles: median {np.median(medpy_vs_isles):+.1%} "
          f"[{medpy_vs_isles.min():+.1%}, {medpy_vs_isles.max():+.1%}]")
    kinds = sorted({r[2] for r in rows})
    for kind in kinds:
        sel = np.array([r[2] == kind for r in rows])
        print(f"  {kind:>27}: assd median {np.median(assd_rel[sel]):+.1%} [{assd_rel[sel].min():+.1%}, "
              f"{assd_rel[sel].max():+.1%}]")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per method; the best is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conventions", metavar="COHORT", help="compare the conventions on this cohort instead")
    args = parser.parse_args(argv)
    if args.conventions:
        return compare_conventions(args.conventions, args.seed)

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
