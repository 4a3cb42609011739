"""Write a synthetic CT-perfusion cohort in the exact ISLES 2018 layout (the physiology: synth_physiology).

    OUT/TRAINING/case_N/SMIR.Brain.XX.O.<MOD>.<ID>/SMIR.Brain.XX.O.<MOD>.<ID>.nii
    OUT/TESTING/case_M/...           (the same without OT; numbered after the training cases)
    OUT/synthetic_cohort.json        (seed, parameters, and per case its patient, slab, lesion volume)

Each patient is a head of synth_physiology with an OT mask = its infarct core.

Varied per patient: slice thickness 4-12 mm, in-plane spacing 0.8-1.0 mm, slab depth 2-22 slices,
lesion size and side, ~10 % lesion-free cases (half of them with a hypoperfusion but no core), and
about 40 % of the lesion patients scanned as two adjacent slabs (same in-plane geometry, adjacent
z-ranges), as in ISLES. Case numbers are shuffled, so patients must be inferred from the headers.
Anatomy is laid out relative to the field of view: at --size 256 the millimetres are realistic; a
smaller size is the same head at a coarser grid (the header spacing stays 0.8-1.0 mm).

On-disk types vary as in real data: CT uint16 with scl_inter = -1024 (HU), CT_4DPWI int16 HU,
CBF and MTT float32, CBV int16 with scl_slope 0.001, Tmax float32 or int16 with scl_slope 0.01, OT
uint8 0/1. Files are uncompressed .nii with a deterministic header: the same seed gives
byte-identical files.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from islesbench.atomic import write_json_atomic
from islesbench.data_prep.synth_physiology import (AIR, BONE, CSF, FOV_HALF_MM, GM, SCALP, WM,  # noqa: F401
                                                   SyntheticPatient, as_float32, check_cohort_size,
                                                   clear_previous_cohort, make_head, pwi_series, smooth_field)
from islesbench.layouts import save_nifti

GENERATOR_VERSION = 1
COHORT_FILE = "synthetic_cohort.json"
FIRST_FILE_ID = 345563


def make_patient(
    seed_words, size: int, slabs: int = 1, lesion_kind: str = "core", patient_id: str = "P000"
) -> SyntheticPatient:
    """Draw one phantom head with `slabs` adjacent thin slabs; deterministic in `seed_words`."""
    rng = np.random.default_rng(seed_words)
    n = int(size)

    # --- geometry and sampling ---------------------------------------------------------------
    dx = as_float32(round(rng.uniform(0.8, 1.0), 4))
    dz = as_float32(round(rng.uniform(4.0, 12.0) * 2) / 2)
    max_total = int(np.clip(130 // dz, 2 * slabs, 44))
    per_slab_max = min(22, max_total // slabs)
    depths = []
    for _ in range(slabs):
        u = rng.uniform() ** 1.6  # more thin slabs than thick ones, as in ISLES
        depths.append(int(2 + round(u * (per_slab_max - 2))))
    total = sum(depths)
    coverage = total * dz
    w_centre = rng.uniform(-10.0, 40.0)
    w_centre = float(np.clip(w_centre, -50 + coverage / 2, 80 - coverage / 2)) if coverage < 130 else 15.0
    w = (w_centre + (np.arange(total) - (total - 1) / 2) * dz).astype(np.float32)  # slice heights (mm)
    origin = (as_float32(rng.uniform(90, 130)), as_float32(rng.uniform(90, 130)), as_float32(w[0] + rng.uniform(-200, -100)))

    def lesion_centre(r):
        # keep the lesion in the covered z-range; two-slab patients straddle the slab boundary
        if slabs > 1:
            return float(w[depths[0]] - dz / 2 + r.uniform(-0.5, 0.5) * dz)
        return float(w[0] + r.uniform(0.3, 0.7) * (w[-1] - w[0]))

    return make_head(rng, n, dx, dz, w, origin, lesion_kind, patient_id, slab_depths=tuple(depths),
                     lesion_rz_floor_mm=0.8 * dz * max(depths), lesion_centre_mm=lesion_centre)


# --------------------------------------------------------------------------------------------------
# the cohort


def plan_cohort(cases: int, test_cases: int, seed: int) -> list[dict]:
    """Patients to draw: split, slab count, lesion kind, and the (shuffled) case numbers they get."""
    rng = np.random.default_rng([seed, 7])
    patients = []
    first_number = 1
    for split, count in (("TRAINING", cases), ("TESTING", test_cases)):
        lesion_free = int(round(0.1 * count)) if count >= 6 else 0
        free_slots = set(rng.choice(count, size=lesion_free, replace=False).tolist()) if lesion_free else set()
        plan, used, slot = [], 0, 0
        while used < count:
            kind = "core"
            if slot in free_slots:
                kind = "none" if len([p for p in plan if p["lesion"] != "core"]) % 2 == 0 else "penumbra-only"
            slabs = 2 if kind == "core" and count - used >= 2 and rng.uniform() < 0.4 else 1
            plan.append({"split": split, "slabs": slabs, "lesion": kind})
            used += slabs
            slot += 1
        numbers = (rng.permutation(count) + first_number).tolist()
        k = 0
        for p in plan:
            p["case_numbers"] = numbers[k : k + p["slabs"]]
            k += p["slabs"]
        first_number += count
        patients += plan
    for i, p in enumerate(patients):
        p["patient"] = f"P{i + 1:03d}"
    return patients


def synthesize_cohort(out, cases: int = 20, seed: int = 0, test_cases: int = 0, size: int = 256,
                      log=print) -> list[Path]:
    """Write the cohort under `out`; return the case folders written, in case-number order."""
    out = Path(out)
    check_cohort_size(cases, test_cases, size, 16)
    clear_previous_cohort(out, ("TRAINING", "TESTING"), COHORT_FILE)
    plan = plan_cohort(cases, test_cases, seed)
    records, written = [], []
    file_id = FIRST_FILE_ID
    for p_index, spec in enumerate(plan):
        patient = make_patient([seed, 1000 + p_index], size, spec["slabs"], spec["lesion"], spec["patient"])
        for k, number in enumerate(spec["case_numbers"]):
            start = time.perf_counter()
            case_id = f"case_{number}"
            folder = out / spec["split"] / case_id
            zs = patient.slab_slice(k)
            affine = patient.slab_affine(k)
            files = {}
            volumes = {m: v[:, :, zs] for m, v in patient.maps.items()}
            volumes["CT_4DPWI"] = pwi_series(patient, zs)
            if spec["split"] == "TRAINING":
                volumes["OT"] = patient.core[:, :, zs].astype(np.uint8)
            for modality in ("CT", "CT_4DPWI", "CT_CBF", "CT_CBV", "CT_MTT", "CT_Tmax", "OT"):
                if modality not in volumes:
                    continue
                name = f"SMIR.Brain.XX.O.{modality}.{file_id}"
                file_id += 1
                path = folder / name / f"{name}.nii"
                dtype, scaling = patient.dtypes[modality]
                spacing = patient.spacing + ((patient.pwi["interval_s"],) if modality == "CT_4DPWI" else ())
                save_nifti(path, volumes[modality], affine, spacing=spacing, dtype=dtype, scaling=scaling)
                files[modality] = str(path.relative_to(out))
            voxel_ml = float(np.prod(patient.spacing)) / 1000.0
            lesion_ml = float(patient.core[:, :, zs].sum()) * voxel_ml
            record = {
                "split": spec["split"],
                "case_id": case_id,
                "patient": spec["patient"],
                "slab": k + 1,
                "slabs": spec["slabs"],
                "lesion": spec["lesion"],
                "side": patient.side,
                "shape": [int(s) for s in volumes["CT"].shape],
                "spacing_mm": [float(s) for s in patient.spacing],
                "frame_interval_s": patient.pwi["interval_s"],
                "frames": patient.pwi["frames"],
                "lesion_volume_ml": round(lesion_ml, 3),
                "penumbra_volume_ml": round(float(patient.penumbra[:, :, zs].sum()) * voxel_ml, 3),
                "cbf_reference": round(patient.cbf_reference, 3),
                "files": files,
            }
            records.append(record)
            written.append(folder)
            log(
                f"synth: {spec['split']}/{case_id}: patient {spec['patient']} slab {k + 1}/{spec['slabs']}, "
                f"{'x'.join(map(str, record['shape']))} at {patient.spacing[0]:.2f}x{patient.spacing[2]:.1f} mm, "
                f"lesion {lesion_ml:.1f} mL ({spec['lesion']}), {time.perf_counter() - start:.1f}s"
            )
    records.sort(key=lambda r: (r["split"] != "TRAINING", int(r["case_id"].split("_")[1])))
    patients: dict = {}
    for r in records:
        patients.setdefault(r["patient"], []).append(f"{r['split']}/{r['case_id']}")
    write_json_atomic(
        out / COHORT_FILE,
        {
            "generator": "islesbench.data_prep.synth",
            "version": GENERATOR_VERSION,
            "seed": seed,
            "parameters": {"cases": cases, "test_cases": test_cases, "size": size},
            "patients": patients,
            "cases": records,
        },
    )
    return sorted(written, key=lambda f: (f.parent.name != "TRAINING", int(f.name.split("_")[1])))


