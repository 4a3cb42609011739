"""Patient inference from headers and patient-grouped, stratified folds."""

import numpy as np
import pytest

from islesbench.data_prep import patients
from islesbench.errors import IslesbenchError


def _geom(z0, nz=8, thickness=5.0, origin=(-100.0, -100.0), shape=(256, 256)):
    affine = np.diag([0.9, 0.9, thickness, 1.0])
    affine[:3, 3] = (origin[0], origin[1], z0)
    return patients.slab_geometry((shape[0], shape[1], nz), affine, (0.9, 0.9, thickness))


def test_abutting_slabs_of_one_head_are_one_patient():
    geoms = {"case_1": _geom(0.0), "case_2": _geom(40.0), "case_3": _geom(0.0, origin=(-90.0, -100.0))}
    mapping, warnings = patients.infer_patients(geoms)
    assert mapping["case_1"] == mapping["case_2"] != mapping["case_3"]
    assert not warnings


def test_distant_or_differently_sampled_slabs_stay_apart():
    geoms = {"case_1": _geom(0.0), "case_2": _geom(80.0), "case_3": _geom(40.0, thickness=4.0)}
    mapping, _ = patients.infer_patients(geoms)
    assert len(set(mapping.values())) == 3


def test_ambiguous_chain_is_not_grouped():
    geoms = {"case_1": _geom(0.0), "case_2": _geom(40.0), "case_3": _geom(80.0)}
    mapping, warnings = patients.infer_patients(geoms)
    assert len(set(mapping.values())) == 3 and warnings and "case_2" in warnings[0]


def test_folds_keep_patients_together_and_cover_every_case():
    mapping = {f"case_{i}": f"p{i // 2}" for i in range(1, 21)}
    lesion = {c: float(i) for i, c in enumerate(mapping)}
    folds = patients.patient_grouped_folds(mapping, lesion, 5, seed=0)
    val_sets = [set(f["val"]) for f in folds]
    assert set().union(*val_sets) == set(mapping) and sum(len(v) for v in val_sets) == 20
    for f in folds:
        assert {mapping[c] for c in f["val"]}.isdisjoint({mapping[c] for c in f["train"]})
    assert folds == patients.patient_grouped_folds(mapping, lesion, 5, seed=0)
    assert folds != patients.patient_grouped_folds(mapping, lesion, 5, seed=1)


def test_folds_are_stratified_by_lesion_volume():
    mapping = {f"case_{i}": f"p{i}" for i in range(50)}
    lesion = {c: float(i) ** 2 for i, c in enumerate(mapping)}
    folds = patients.patient_grouped_folds(mapping, lesion, 5, seed=0)
    means = [np.mean([lesion[c] for c in f["val"]]) for f in folds]
    assert max(means) / min(means) < 1.5


def test_too_few_patients_is_a_clear_error():
    with pytest.raises(IslesbenchError, match="3 patients cannot fill 5 folds"):
        patients.patient_grouped_folds({"a": "1", "b": "2", "c": "3"}, {"a": 0, "b": 0, "c": 0}, 5, 0)


def test_patients_csv(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("case,patient\ncase_1,A\ncase_2,A\n")
    assert patients.read_patients_csv(f, ["case_1", "case_2"]) == {"case_1": "A", "case_2": "A"}
    with pytest.raises(IslesbenchError, match="case_3"):
        patients.read_patients_csv(f, ["case_1", "case_3"])
