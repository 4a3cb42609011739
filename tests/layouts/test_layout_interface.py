"""The layout interface, exercised the same way on both layouts: detect, discover, validate, load, write back."""

from __future__ import annotations

import numpy as np
import pytest

from islesbench import layouts
from islesbench.errors import CaseError, IslesbenchError

LAYOUT_COHORTS = {"isles2018": "tiny_cohort", "isles24": "tiny_isles24"}


@pytest.fixture(params=sorted(LAYOUT_COHORTS))
def cohort(request):
    """(layout name, cohort root) for each layout."""
    return request.param, request.getfixturevalue(LAYOUT_COHORTS[request.param])


def test_detects_its_own_layout(cohort):
    name, root = cohort
    assert layouts.resolve(root).NAME == name
    assert layouts.resolve(root, name).NAME == name


def test_discovers_cases_with_channels_split_and_patient(cohort):
    name, root = cohort
    cases = layouts.discover_cohort(root)
    training = [c for c in cases if c.split == "TRAINING"]
    testing = [c for c in cases if c.split == "TESTING"]
    assert training and testing
    for case in cases:
        assert case.layout == name
        assert set(layouts.MAP_CHANNELS) <= set(case.files)
        assert (layouts.MASK in case.files) == (case.split == "TRAINING")
        assert case.problems == ()
    # ISLES'24 records the patient (the subject); ISLES 2018 leaves it to prepare to infer
    assert all((c.patient == c.case_id) if name == "isles24" else c.patient is None for c in cases)


def test_validate_load_and_write_back_in_the_input_geometry(cohort, tmp_path):
    name, root = cohort
    case = next(c for c in layouts.discover_cohort(root) if c.split == "TRAINING")
    assert layouts.validate_case(case) == []
    loaded = layouts.load_case(case)
    assert set(loaded.volumes) == set(layouts.MAP_CHANNELS)
    assert all(v.shape == loaded.shape and v.dtype == np.float32 for v in loaded.volumes.values())
    assert loaded.mask.shape == loaded.shape and loaded.mask.dtype == bool
    ct, affine, spacing = layouts.load_volume(case, "CT")
    np.testing.assert_array_equal(ct, loaded.volumes["CT"])
    np.testing.assert_allclose(affine, loaded.affine)

    target = tmp_path / layouts.prediction_name(case.case_id)
    layouts.write_prediction(target, loaded.mask, loaded.affine, loaded.spacing)
    data, back_affine, back_spacing = layouts.read_nifti(target)
    np.testing.assert_array_equal(data > 0, loaded.mask)
    np.testing.assert_allclose(back_affine, loaded.affine, atol=1e-5)
    np.testing.assert_allclose(back_spacing, loaded.spacing, rtol=1e-6)


def test_a_named_layout_that_does_not_fit_is_a_clear_error(tiny_cohort, tiny_isles24):
    with pytest.raises(IslesbenchError, match="no ISLES'24 \\(BIDS\\) subjects"):
        layouts.discover_cohort(tiny_cohort / "TRAINING", "isles24")
    with pytest.raises(IslesbenchError, match="no ISLES 2018 cases found"):
        layouts.discover_cohort(tiny_isles24, "isles2018")
    with pytest.raises(IslesbenchError, match="unknown layout"):
        layouts.resolve(tiny_isles24, "isles2022")


def test_missing_input_names_where_it_was_looked_for(tiny_isles24, tmp_path):
    import shutil

    root = tmp_path / "cohort"
    shutil.copytree(tiny_isles24, root)
    case = layouts.discover_cohort(root)[0]
    case.files["CT_Tmax"].unlink()
    case = layouts.discover_cohort(root)[0]
    (fault,) = layouts.validate_case(case)
    assert fault.startswith(f"{case.case_id}: ") and "space-ncct_tmax" in fault and "missing modality CT_Tmax" in fault
    with pytest.raises(CaseError, match="missing modality CT_Tmax"):
        layouts.load_case(case)


def test_discover_cohort_reads_both_layouts(tiny_cohort, tiny_isles24):
    assert {c.layout for c in layouts.discover_cohort(tiny_cohort)} == {"isles2018"}
    assert {c.layout for c in layouts.discover_cohort(tiny_isles24)} == {"isles24"}


def test_evaluate_reads_references_from_either_layout(cohort, tmp_path):
    from islesbench.evaluation.folders import evaluate_folder

    name, root = cohort
    preds = tmp_path / "pred"
    training = [c for c in layouts.discover_cohort(root) if c.split == "TRAINING"]
    for case in training:
        loaded = layouts.load_case(case, modalities=("CT",))
        layouts.write_prediction(preds / layouts.prediction_name(case.case_id), loaded.mask, loaded.affine,
                                 loaded.spacing)
    ref = root / "TRAINING" if name == "isles2018" else root  # a BIDS root's test subjects are skipped
    summary = evaluate_folder(preds, ref, tmp_path / "ev", layout=name, log=None)
    assert summary["metrics"]["dice"]["mean"] == pytest.approx(1.0)
