"""Which cases come from the same patient, and patient-grouped, volume-stratified folds.

ISLES 2018 has 94 training slabs from 63 patients: a patient with a large lesion contributes two slabs
that are one acquisition cut in two. Folds must never put one patient on both sides.

Inference rule when no `--patients CSV` is given: two cases are one patient when they share the in-plane
geometry exactly (shape, in-plane spacing, orientation and in-plane origin within 0.01 mm) and their
z-ranges abut (the gap between them, along the slice normal, lies between -0.5 and 1.5 slice
thicknesses). A patient has at most two slabs, as in ISLES; a case that would pair with more than one
other is ambiguous and is kept alone, with a warning.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from islesbench.errors import IslesbenchError


def slab_geometry(shape, affine, spacing) -> dict:
    """What the pairing rule compares: in-plane key and z-range along the slice normal."""
    affine = np.asarray(affine, float)
    normal = affine[:3, 2] / max(np.linalg.norm(affine[:3, 2]), 1e-9)
    start = float(affine[:3, 3] @ normal)
    end = start + (shape[2] - 1) * float(spacing[2])
    return {
        "shape_xy": (int(shape[0]), int(shape[1])),
        "spacing": tuple(float(s) for s in spacing),
        "rotation": affine[:3, :2],
        "origin_inplane": affine[:3, 3] - (affine[:3, 3] @ normal) * normal,
        "z_range": (min(start, end), max(start, end)),
    }


def _same_plane(a: dict, b: dict) -> bool:
    return (a["shape_xy"] == b["shape_xy"]
            and np.allclose(a["spacing"][:2], b["spacing"][:2], atol=1e-3)
            and abs(a["spacing"][2] - b["spacing"][2]) < 1e-3
            and np.allclose(a["rotation"], b["rotation"], atol=1e-3)
            and np.allclose(a["origin_inplane"], b["origin_inplane"], atol=1e-2))


def _abut(a: dict, b: dict) -> bool:
    thickness = a["spacing"][2]
    lo, hi = sorted([a["z_range"], b["z_range"]])
    gap = hi[0] - lo[1]
    return -0.5 * thickness <= gap <= 1.5 * thickness


def infer_patients(geometries: dict) -> tuple[dict, list]:
    """case -> patient id (the first case's id of the pair), and warnings about ambiguous cases."""
    ids = list(geometries)
    partners = {c: [] for c in ids}
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            if _same_plane(geometries[a], geometries[b]) and _abut(geometries[a], geometries[b]):
                partners[a].append(b)
                partners[b].append(a)
    patients, warnings = {}, []
    for c in ids:
        if c in patients:
            continue
        if len(partners[c]) == 1 and len(partners[partners[c][0]]) == 1:
            other = partners[c][0]
            patients[c] = patients[other] = f"patient_{c}"
        else:
            if len(partners[c]) > 1:
                warnings.append(f"{c}: abuts several slabs ({', '.join(partners[c])}); kept as its own patient")
            patients[c] = f"patient_{c}"
    return patients, warnings


def read_patients_csv(path, case_ids) -> dict:
    """case -> patient from a CSV with columns `case,patient`; every case must be listed."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise IslesbenchError(f"patients file {path} does not exist") from None
    if not rows or not {"case", "patient"} <= set(rows[0]):
        raise IslesbenchError(f"{path}: needs a header with columns `case,patient`")
    mapping = {r["case"].strip(): r["patient"].strip() for r in rows}
    missing = [c for c in case_ids if c not in mapping]
    if missing:
        raise IslesbenchError(f"{path}: no patient given for {', '.join(missing)}")
    return {c: mapping[c] for c in case_ids}


def patient_grouped_folds(patients: dict, lesion_ml: dict, k: int, seed: int) -> list:
    """K folds of {"train", "val"} case lists: whole patients per fold, stratified by lesion volume.

    Patients are sorted by total lesion volume and dealt out in blocks of K, each block in a seeded
    random fold order, so every fold sees small, medium and large lesions.
    """
    by_patient: dict = {}
    for case, patient in patients.items():
        by_patient.setdefault(patient, []).append(case)
    if len(by_patient) < k:
        raise IslesbenchError(f"{len(by_patient)} patients cannot fill {k} folds; use --folds {len(by_patient)} or fewer")
    order = sorted(by_patient, key=lambda p: (sum(lesion_ml[c] for c in by_patient[p]), p))
    rng = np.random.default_rng(seed)
    val = [[] for _ in range(k)]
    for start in range(0, len(order), k):
        block = order[start:start + k]
        for patient, fold in zip(block, rng.permutation(k)):
            val[fold].extend(by_patient[patient])
    every = sorted(patients, key=_natural_key)
    return [{"train": [c for c in every if c not in set(v)], "val": sorted(v, key=_natural_key)} for v in val]


def _natural_key(name: str):

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
