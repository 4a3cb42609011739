"""prepare on an ISLES'24 BIDS cohort: subjects are patients, the slice spacing is the cohort's and recorded,
changing it prepares again, and the version-1 manifest reading stays as it was."""

from __future__ import annotations

import json

import pytest

from islesbench.data_prep.prepare import prepare_cohort
from islesbench.errors import IslesbenchError
from islesbench.storage import manifest


@pytest.fixture(scope="module")
def prepared24(tiny_isles24, tmp_path_factory):
    return prepare_cohort(tiny_isles24, tmp_path_factory.mktemp("prep24"), folds=3, seed=0, grid=32)


def test_subjects_are_patients_and_test_subjects_stay_out_of_the_folds(prepared24):
    patients = json.loads(prepared24.paths.patients.read_text())
    assert patients["patients"] == {c: c for c in prepared24.case_ids("TRAINING")}
    assert "recorded by the isles24 layout" in patients["method"]
    assert prepared24.case_ids("TESTING") == ["sub-synth0004"]
    folded = {c for f in prepared24.splits() for c in f["val"]}
    assert folded == set(prepared24.case_ids("TRAINING"))


def test_layout_default_slice_spacing_is_recorded(prepared24):
    assert prepared24.layout == "isles24" and prepared24.slice_mm == 4.0
    for entry in prepared24.cases.values():
        sampling = entry["sampling"]
        z_mm = sampling["canonical_shape"][2] * sampling["canonical_spacing"][2]
        assert entry["num_slices"] == sampling["depth"] == round(z_mm / 4.0)
        assert entry["grid_spacing"][2] == pytest.approx(z_mm / sampling["depth"])


def test_another_slice_spacing_prepares_again(tiny_isles24, prepared24, capsys):
    again = prepare_cohort(tiny_isles24, prepared24.root, folds=3, seed=0, grid=32, slice_mm=6.0)
    assert "preparing 4 case(s), 0 already done" in capsys.readouterr().out
    assert again.slice_mm == 6.0
    prepare_cohort(tiny_isles24, prepared24.root, folds=3, seed=0, grid=32, slice_mm=6.0)
    assert "preparing 0 case(s), 4 already done" in capsys.readouterr().out
    with pytest.raises(IslesbenchError, match="--slice-mm must be positive"):
        prepare_cohort(tiny_isles24, prepared24.root, folds=3, grid=32, slice_mm=0)


def test_version_1_manifest_is_read_as_unreoriented(tiny_prepared, tmp_path):
    data = json.loads(tiny_prepared.paths.manifest.read_text())
    for key in ("manifest_version", "layout", "slice_mm"):
        data.pop(key, None)
    for entry in data["cases"]:
        entry.pop("sampling")
    (tmp_path / manifest.MANIFEST).write_text(json.dumps(data))
    old = manifest.PreparedData(tmp_path)
    assert old.layout == "isles2018" and old.slice_mm is None
    entry = next(iter(old.cases.values()))
    assert manifest.case_geometry(entry) == tuple(entry["shape"])
    data["manifest_version"] = 3
    (tmp_path / manifest.MANIFEST).write_text(json.dumps(data))
    with pytest.raises(IslesbenchError, match="manifest version 3"):
        manifest.PreparedData(tmp_path)
