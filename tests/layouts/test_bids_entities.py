"""ISLES'24: files are chosen by BIDS entities (sub, ses, space, suffix), across the releases' naming variants."""

from __future__ import annotations

import numpy as np
import pytest

from islesbench.layouts import isles24, save_nifti, validate_case
from islesbench.layouts.isles24 import channel_of, discover_cohort, parse_bids_name, session_number


@pytest.mark.parametrize("name, entities, suffix", [
    ("sub-stroke0001_ses-01_ncct.nii.gz", {"sub": "stroke0001", "ses": "01"}, "ncct"),
    ("sub-stroke0001_ses-01_space-ncct_tmax.nii.gz", {"sub": "stroke0001", "ses": "01", "space": "ncct"}, "tmax"),
    ("sub-stroke0001_ses-02_space-ncct_lesion-msk.nii.gz", {"sub": "stroke0001", "ses": "02", "space": "ncct"},
     "lesion-msk"),
    ("sub-7_ses-0002_space-NCCT_lesion_msk.nii", {"sub": "7", "ses": "0002", "space": "NCCT"}, "lesion_msk"),
    ("sub-7_ses-02_label-lesion_msk.nii.gz", {"sub": "7", "ses": "02", "label": "lesion"}, "msk"),
    ("sub-7_ses-1_run-2_Tmax.NII.GZ", {"sub": "7", "ses": "1", "run": "2"}, "Tmax"),
])
def test_parse_bids_name(name, entities, suffix):
    assert parse_bids_name(name) == (entities, suffix)


@pytest.mark.parametrize("name", ["ncct.nii.gz", "notes_sub-1.txt", "ses-01_ncct.nii.gz", "sub-1_ses-01_cbf.json"])
def test_not_bids_nifti(name):
    assert parse_bids_name(name) is None


def test_sessions_compare_as_numbers_and_suffixes_map_to_channels():
    assert session_number("01") == session_number("1") == session_number("0001") == 1
    assert channel_of({}, "Tmax") == "CT_Tmax" and channel_of({}, "NCCT") == "CT"
    for entities, suffix in [({}, "lesion-msk"), ({}, "lesion_mask"), ({"label": "lesion"}, "msk"),
                             ({"desc": "lesion"}, "mask")]:
        assert channel_of(entities, suffix) == "OT"
    assert channel_of({"label": "lvo"}, "msk") is None and channel_of({}, "dwi") is None


def _volume(path, value=1.0, shape=(6, 5, 4)):
    save_nifti(path, np.full(shape, value, np.float32), np.diag([1.0, 1.0, 2.0, 1.0]))


def _write_subject(root, variant: str):
    """One subject in a given release's spelling; returns its expected channel -> file name."""
    sub = "sub-stroke0007"
    raw = root / ("rawdata" if variant == "bids" else "raw_data") / sub
    der = root / "derivatives" / sub
    ses1, ses2 = ("ses-0001", "ses-0002") if variant == "bids" else ("ses-01", "ses-02")
    names = {"CT": raw / ses1 / f"{sub}_{ses1}_ncct.nii.gz"}
    maps_dir = der / ses1 / ("perfusion-maps" if variant != "flat" else "")
    for channel, suffix in (("CT_CBF", "cbf"), ("CT_CBV", "CBV"), ("CT_MTT", "mtt"), ("CT_Tmax", "Tmax")):
        names[channel] = maps_dir / f"{sub}_{ses1}_space-ncct_{suffix}.nii.gz"
        # the raw CTP-space map of the same name but without space-ncct is another grid: never an input
        _volume(raw / ses1 / "perfusion-maps" / f"{sub}_{ses1}_{suffix}.nii.gz", shape=(3, 3, 3))
    mask_name = {"v7": "space-ncct_lesion-msk", "bids": "space-ncct_label-lesion_mask", "flat": "space-ncct_lesion_msk"}
    names["OT"] = der / ses2 / f"{sub}_{ses2}_{mask_name[variant]}.nii.gz"
    _volume(der / ses2 / f"{sub}_{ses2}_space-ncct_dwi.nii.gz")  # follow-up MRI: not an input
    for channel, path in names.items():
        _volume(path, value=1.0 if channel != "OT" else 0.0)
    return names


@pytest.mark.parametrize("variant", ["v7", "bids", "flat"])
def test_discovery_across_naming_variants(tmp_path, variant):
    names = _write_subject(tmp_path, variant)
    (case,) = discover_cohort(tmp_path)
    assert (case.case_id, case.split, case.patient) == ("sub-stroke0007", "TRAINING", "sub-stroke0007")
    assert {c: p for c, p in case.files.items()} == names
    assert case.problems == ()
    assert validate_case(case) == []
    # a subject folder alone, and the derivatives folder's subject, find the same files
    (single,) = discover_cohort(next(p for p in names["CT"].parents if p.name == "sub-stroke0007"))
    assert single.files == names


def test_duplicate_and_misplaced_files_are_named(tmp_path):
    names = _write_subject(tmp_path, "v7")
    extra = names["CT_CBF"].parent.parent / "sub-stroke0007_ses-01_space-ncct_cbf.nii.gz"  # beside perfusion-maps/
    _volume(extra)
    stray = names["CT"].parent / "sub-stroke0008_ses-01_ncct.nii.gz"
    _volume(stray)
    (case,) = discover_cohort(tmp_path)
    problems = dict(case.problems)
    assert "duplicate CT_CBF file" in next(v for k, v in problems.items() if k.endswith("cbf.nii.gz"))
    assert "file of subject sub-stroke0008" in problems[str(stray)]
    faults = validate_case(case)
    assert any("duplicate CT_CBF" in f for f in faults)


def test_subject_without_follow_up_mask_is_a_test_case(tmp_path):
    names = _write_subject(tmp_path, "v7")
    names["OT"].unlink()
    (case,) = discover_cohort(tmp_path)
    assert case.split == "TESTING" and "OT" not in case.files
    assert validate_case(case) == []


def test_layout_detection(tmp_path):
    _write_subject(tmp_path, "bids")
    assert isles24.looks_like(tmp_path)
    assert not isles24.looks_like(tmp_path / "derivatives" / "sub-stroke0007" / "ses-0001")


def test_a_source_folder_given_reads_the_whole_dataset(tmp_path):
    names = _write_subject(tmp_path, "v7")
    (case,) = discover_cohort(tmp_path / "derivatives")
    assert case.files == names


def test_raw_ncct_preferred_over_a_registered_copy(tmp_path):
    names = _write_subject(tmp_path, "v7")
    _volume(tmp_path / "derivatives" / "sub-stroke0007" / "ses-01" / "sub-stroke0007_ses-01_space-ncct_ncct.nii.gz")
    (case,) = discover_cohort(tmp_path)
    assert case.files["CT"] == names["CT"] and case.problems == ()
