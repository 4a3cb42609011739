"""Training on a fraction of a fold's training patients (data-efficiency curves).

The subset is drawn by patient, never by slab (a patient's slabs stay together, as in the folds), from one
seeded order of the fold's training patients: a fraction f takes the first ceil(f·n) patients of that
order. So for one fold and seed the smaller sets are subsets of the larger ones (nested), every fraction
keeps at least one patient, and 1.0 is the whole fold. The order depends on (fraction_seed, fold) only,
not on the training seed, so repeats over training seeds train on the same patients.
"""

from __future__ import annotations

import math

import numpy as np


def patient_order(train_ids, patient_of: dict, seed: int, fold: int) -> list:
    """The fold's training patients in the seeded order the subsets take them from."""
    patients = sorted({patient_of.get(c, c) for c in train_ids})
    rng = np.random.default_rng([int(seed), int(fold)])
    return [patients[i] for i in rng.permutation(len(patients))]


def subset_patients(train_ids, patient_of: dict, fraction: float, seed: int, fold: int) -> list:
    """The training patients a run with `fraction` uses (sorted)."""
    order = patient_order(train_ids, patient_of, seed, fold)
    return sorted(order[: max(1, math.ceil(fraction * len(order)))])


def training_subset(train_ids, patient_of: dict, fraction: float, seed: int, fold: int) -> list:
    """The training cases of those patients, in the fold's own order."""
    if fraction >= 1:
        return list(train_ids)
    keep = set(subset_patients(train_ids, patient_of, fraction, seed, fold))
    return [c for c in train_ids if patient_of.get(c, c) in keep]


def parse_fractions(value) -> list:
    """`0.25,0.5,1.0` (the command line) or [0.25, 0.5, 1.0] (a grid file) as sorted unique floats in (0, 1];
    ValueError naming the bad item."""
    if isinstance(value, str):
        items = [float(item) for item in (i.strip() for i in value.split(",")) if item]  # ValueError: not a number
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"{value!r} is neither a list of numbers nor `F1,F2,...`")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)):  # JSON true would pass as 1
            raise ValueError(f"{item!r} is not a number")
        if not 0 < item <= 1:
            raise ValueError(f"{item:g} is not in (0, 1]")
    if not items:
        raise ValueError("no fraction given")
    return sorted({float(f) for f in items})
