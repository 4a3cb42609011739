"""Write a synthetic cohort in the ISLES'24 BIDS layout, from the same physiology as the ISLES 2018 one.

    OUT/dataset_description.json
    OUT/raw_data/sub-synthNNNN/ses-01/sub-synthNNNN_ses-01_ncct.nii.gz
    OUT/derivatives/sub-synthNNNN/ses-01/sub-synthNNNN_ses-01_space-ncct_cta.nii.gz
    OUT/derivatives/sub-synthNNNN/ses-01/perfusion-maps/sub-synthNNNN_ses-01_space-ncct_{cbf,cbv,mtt,tmax}.nii.gz
    OUT/derivatives/sub-synthNNNN/ses-02/sub-synthNNNN_ses-02_space-ncct_lesion-msk.nii.gz   (training subjects)
    OUT/synthetic_cohort.json   seed, and per subject its orientation, acute core, penumbra and final volumes

Each subject is one synth_physiology head over the whole brain (slice heights -60 to +90 mm) in thin
slices (1-2 mm), in-plane at the field of view's own spacing (230 mm over --size voxels). Everything
is on the NCCT grid, as the release's `space-ncct` derivatives are (the raw CTP-space maps, the 4-D CTP,
DWI/ADC and phenotype tables are not written: no input of islesbench reads them).

- NCCT: the head's CT in HU (early hypodensity in the acute core), int16.
- CTA: the NCCT plus contrast: parenchymal enhancement proportional to CBV, and both middle cerebral
  artery trunks (250-350 HU tubes); on the lesion side the trunk stops short (the occlusion).
- maps: CBF, CBV, MTT, Tmax as in the ISLES 2018 cohort (same dtypes and scaling).
- follow-up lesion (ses-02): the final infarct grows from the acute core into the penumbra: with
  reperfusion (half the patients) by 0-3 mm, without by 6-25 mm; a patient with penumbra but no core
  infarcts a patch of it only without reperfusion; lesion-free heads have an empty mask.
- orientation: subject k is stored as ORIENTATIONS[k % 3] -- RAS, LPS, or permuted axes (PSR: voxel
  axis 0 runs posterior, 1 superior, 2 right) -- with the matching affine, so the same anatomy reaches
  the reader in three voxel orders.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from islesbench.atomic import write_json_atomic
from islesbench.data_prep.synth_isles2018 import COHORT_FILE, plan_cohort
from islesbench.data_prep.synth_physiology import (FOV_HALF_MM, GM, WM, SyntheticPatient, as_float32, check_cohort_size,
                                                   clear_previous_cohort, make_head)
from islesbench.layouts import save_nifti

# nibabel imported inside functions only, so that `islesbench --help` and start-up stay fast.

GENERATOR_VERSION = 1
DEFAULT_SIZE = 160
ORIENTATIONS = (("R", "A", "S"), ("L", "P", "S"), ("P", "S", "R"))
BRAIN_RANGE_MM = (-60.0, 90.0)  # slice heights covered: skull base to vertex
SLICE_MM_CHOICES = (1.0, 1.25, 1.5, 2.0)
MAPS = {"CT_CBF": "cbf", "CT_CBV": "cbv", "CT_MTT": "mtt", "CT_Tmax": "tmax"}


def subject_id(number: int) -> str:
    """BIDS subject folder name of subject `number`."""
    return f"sub-synth{number:04d}"


def make_subject(seed_words, size: int, lesion_kind: str = "core", patient_id: str = "P000") -> tuple:
    """(head, slice heights in mm): one whole-brain head in thin slices; deterministic in `seed_words`."""
    rng = np.random.default_rng(seed_words)
    n = int(size)
    dx = as_float32(round(2 * FOV_HALF_MM / n * rng.uniform(0.95, 1.05), 4))
    dz = as_float32(float(rng.choice(SLICE_MM_CHOICES)))
    total = int(round((BRAIN_RANGE_MM[1] - BRAIN_RANGE_MM[0]) / dz)) + 1
    w = (BRAIN_RANGE_MM[0] + rng.uniform(-3, 3) + np.arange(total) * dz).astype(np.float32)
    half = n * dx / 2
    origin = (as_float32(half + rng.uniform(-10, 10)), as_float32(half + rng.uniform(-10, 10)), as_float32(w[0] + rng.uniform(-200, -100)))
    head = make_head(rng, n, dx, dz, w, origin, lesion_kind, patient_id, slab_depths=(total,),
                     lesion_rz_floor_mm=0.0, lesion_centre_mm=lambda r: r.uniform(0.0, 50.0))
    return head, w


def follow_up_lesion(patient: SyntheticPatient, rng) -> tuple[np.ndarray, dict]:
    """The ses-02 infarct: the acute core grown into the penumbra (less with reperfusion), and its story."""
    tissue = (patient.labels == GM) | (patient.labels == WM)
    reperfused = bool(rng.uniform() < 0.5)
    info = {"reperfused": reperfused}
    if patient.core.any():
        growth = float(rng.uniform(0.0, 3.0) if reperfused else rng.uniform(6.0, 25.0))
        distance = ndimage.distance_transform_edt(~patient.core, sampling=patient.spacing)
        final = patient.core | (patient.penumbra & tissue & (distance <= growth))
        info["growth_mm"] = round(growth, 2)
    elif patient.penumbra.any() and not reperfused:
        grid = np.indices(patient.penumbra.shape, dtype=np.float32)
        centre = [float(g[patient.penumbra].mean()) for g in grid]
        spread = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, patient.spacing)))
        final = patient.penumbra & tissue & (spread < rng.uniform(5.0, 12.0))
        info["growth_mm"] = None
    else:
        final = np.zeros(patient.core.shape, bool)
        info["growth_mm"] = None
    return final, info


def cta_volume(patient: SyntheticPatient, heights, rng) -> np.ndarray:
    """A simple CTA (HU): the NCCT, parenchyma enhanced by CBV, and the two MCA trunks (one occluded)."""
    n = patient.labels.shape[0]
    ct, cbv = patient.maps["CT"], patient.maps["CT_CBV"]
    cta = ct + np.float32(rng.uniform(5.0, 8.0)) * cbv
    grid = (np.arange(n, dtype=np.float32) + 0.5 - n / 2) / (n / 2)  # anatomy units, +-1 = +-FOV_HALF_MM
    x, y = grid[:, None], grid[None, :]
    radius = 1.6 / FOV_HALF_MM  # a 1.6 mm tube
    mca = np.abs(np.asarray(heights) - (-5.0)) < 1.6  # the MCA runs at the level of the basal ganglia
    occluded_side = {"left": -1, "right": 1}.get(patient.side, 0) if patient.core.any() else 0
    for side in (-1, 1):
        reach = 0.18 if side == occluded_side else 0.45
        trunk = (np.abs(y - 0.05) < radius) & (side * x > 0.04) & (side * x < reach)
        for k in np.nonzero(mca)[0]:
            cta[:, :, k][trunk] = np.float32(rng.uniform(250, 350))
    return np.rint(cta).astype(np.float32)


def _reoriented(array: np.ndarray, affine: np.ndarray, codes: tuple) -> tuple[np.ndarray, np.ndarray]:
    """`array` and its affine stored with voxel axes pointing along `codes` (same anatomy, same world)."""
    from nibabel import orientations

    transform = orientations.ornt_transform(orientations.io_orientation(affine), orientations.axcodes2ornt(codes))
    out = orientations.apply_orientation(array, transform)
    new_affine = affine @ orientations.inv_ornt_aff(transform, array.shape[:3])
    return np.ascontiguousarray(out), np.array([[as_float32(v) for v in row] for row in new_affine])


def synthesize_isles24(out, cases: int = 20, seed: int = 0, test_cases: int = 0, size: int = DEFAULT_SIZE,
                       log=print) -> list[Path]:
    """Write the BIDS cohort under `out`; return the subjects' raw-data folders in subject order."""
    out = Path(out)
    check_cohort_size(cases, test_cases, size, 32)
    clear_previous_cohort(out, ("raw_data", "derivatives"), COHORT_FILE)
    # The ISLES 2018 plan's lesion kinds (about 10 % lesion-free), one subject per patient.
    plan = plan_cohort(cases, test_cases, seed)
    records, written = [], []
    for k in range(cases + test_cases):
        start = time.perf_counter()
        split = "TRAINING" if k < cases else "TESTING"
        kind = plan[k]["lesion"] if k < len(plan) else "core"
        subject = subject_id(k + 1)
        patient, heights = make_subject([seed, 2000 + k], size, kind, subject)
        rng = np.random.default_rng([seed, 3000 + k])
        final, story = follow_up_lesion(patient, rng)
        cta = cta_volume(patient, heights, rng)
        codes = ORIENTATIONS[k % len(ORIENTATIONS)]
        files = {}

        def write(relative: str, array, dtype, scaling=None):
            data, affine = _reoriented(array, patient.affine, codes)
            save_nifti(out / relative, data, affine, spacing=_stored_spacing(patient.spacing, codes),
                       dtype=dtype, scaling=scaling)
            files[relative.rsplit("_", 1)[-1].split(".")[0]] = relative

        acute = f"{subject}/ses-01"
        write(f"raw_data/{acute}/{subject}_ses-01_ncct.nii.gz", patient.maps["CT"], np.int16)
        write(f"derivatives/{acute}/{subject}_ses-01_space-ncct_cta.nii.gz", cta, np.int16)
        for channel, suffix in MAPS.items():
            dtype, scaling = patient.dtypes[channel]
            write(f"derivatives/{acute}/perfusion-maps/{subject}_ses-01_space-ncct_{suffix}.nii.gz",
                  patient.maps[channel], dtype, scaling)
        if split == "TRAINING":
            write(f"derivatives/{subject}/ses-02/{subject}_ses-02_space-ncct_lesion-msk.nii.gz",
                  final.astype(np.uint8), np.uint8)
        voxel_ml = float(np.prod(patient.spacing)) / 1000.0
        record = {
            "split": split, "case_id": subject, "patient": subject, "lesion": kind, "side": patient.side,
            "orientation": "".join(codes), "shape_ras_order": [int(s) for s in patient.labels.shape],
            "spacing_mm": [float(s) for s in patient.spacing],
            "acute_core_ml": round(float(patient.core.sum()) * voxel_ml, 3),
            "penumbra_volume_ml": round(float(patient.penumbra.sum()) * voxel_ml, 3),
            "lesion_volume_ml": round(float(final.sum()) * voxel_ml, 3) if split == "TRAINING" else None,
            **story, "files": files,
        }
        records.append(record)
        written.append(out / "raw_data" / subject)
        log(f"synth: {subject} ({split.lower()}): {'x'.join(map(str, patient.labels.shape))} at "
            f"{patient.spacing[0]:.2f}x{patient.spacing[2]:.2f} mm stored {''.join(codes)}, acute core "
            f"{record['acute_core_ml']:.1f} mL, follow-up lesion {final.sum() * voxel_ml:.1f} mL, "
            f"{time.perf_counter() - start:.1f}s")
    write_json_atomic(out / "dataset_description.json",
                      {"Name": "islesbench synthetic ISLES'24-layout cohort", "BIDSVersion": "1.9.0",
                       "DatasetType": "raw", "GeneratedBy": [{"Name": "islesbench synth --layout isles24"}]})
    write_json_atomic(out / COHORT_FILE, {
        "generator": "islesbench.data_prep.synth_isles24", "version": GENERATOR_VERSION, "layout": "isles24",
        "seed": seed, "parameters": {"cases": cases, "test_cases": test_cases, "size": size},
        "patients": {r["patient"]: [r["case_id"]] for r in records}, "cases": records})
    return written


def _stored_spacing(spacing: tuple, codes: tuple) -> tuple:
    """Header zooms of the reoriented volume: the LPS-order spacing permuted like the axes."""
    axis_of = {"L": 0, "R": 0, "P": 1, "A": 1, "S": 2, "I": 2}
    return tuple(float(spacing[axis_of[c]]) for c in codes)


