"""The ISLES 2018 reader on a good tiny cohort and on each kind of malformed case."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from islesbench.errors import CaseError, IslesbenchError
from islesbench.layouts import discover_cohort, load_case, load_pwi, read_nifti, save_nifti, validate_case
from islesbench.layouts.isles2018 import MAP_MODALITIES

SHAPE = (12, 10, 3)


def _affine(dz: float = 5.0, z0: float = -20.0) -> np.ndarray:
    a = np.diag([-0.75, -0.75, dz, 1.0])
    a[:3, 3] = (8.0, 7.5, z0)
    return a


def write_case(root: Path, number: int, split: str = "TRAINING", shape=SHAPE, mask=None, pwi=True) -> Path:
    """A tiny well-formed case in the ISLES layout; returns its folder."""
    rng = np.random.default_rng(number)
    folder = root / split / f"case_{number}"
    file_id = 1000 * number
    volumes = {
        "CT": (np.rint(rng.uniform(-20, 80, shape)), np.int16, None),
        "CT_CBF": (rng.uniform(1, 70, shape).astype(np.float32), np.float32, None),
        "CT_CBV": (rng.uniform(0.1, 5, shape), np.int16, (0.001, 0.0)),
        "CT_MTT": (rng.uniform(2, 12, shape).astype(np.float32), np.float32, None),
        "CT_Tmax": (rng.uniform(0, 12, shape).astype(np.float32), np.float32, None),
    }
    if pwi:
        volumes["CT_4DPWI"] = (np.rint(rng.uniform(0, 80, shape + (4,))), np.int16, None)
    if split == "TRAINING":
        m = np.zeros(shape, np.uint8) if mask is None else mask
        m[3:6, 3:6, 1] = 1 if mask is None else m[3:6, 3:6, 1]
        volumes["OT"] = (m, np.uint8, None)
    for modality, (data, dtype, scaling) in volumes.items():
        name = f"SMIR.Brain.XX.O.{modality}.{file_id}"
        file_id += 1
        spacing = (0.75, 0.75, 5.0, 1.5) if modality == "CT_4DPWI" else None
        save_nifti(folder / name / f"{name}.nii", data, _affine(), spacing=spacing, dtype=dtype, scaling=scaling)
    return folder


def modality_file(folder: Path, modality: str) -> Path:
    """The .nii of `modality` in a case folder."""
    (sub,) = [p for p in folder.iterdir() if p.name.split(".")[4] == modality]
    return next(sub.glob("*.nii*"))


def faults_of(folder: Path) -> list[str]:
    (case,) = discover_cohort(folder)
    return validate_case(case)


@pytest.fixture
def cohort(tmp_path):
    for n in (1, 2, 10):
        write_case(tmp_path, n)
    write_case(tmp_path, 11, split="TESTING")
    return tmp_path


def test_discover_natural_order_and_splits(cohort):
    cases = discover_cohort(cohort)
    assert [(c.split, c.case_id) for c in cases] == [
        ("TRAINING", "case_1"),
        ("TRAINING", "case_2"),
        ("TRAINING", "case_10"),
        ("TESTING", "case_11"),
    ]
    assert set(cases[0].files) == {"CT", "CT_4DPWI", "CT_CBF", "CT_CBV", "CT_MTT", "CT_Tmax", "OT"}
    assert "OT" not in cases[3].files
    # a split folder itself, and one case folder
    assert [c.case_id for c in discover_cohort(cohort / "TRAINING")] == ["case_1", "case_2", "case_10"]
    (single,) = discover_cohort(cohort / "TRAINING" / "case_2")
    assert (single.case_id, single.split) == ("case_2", "TRAINING")


def test_discover_nothing_is_a_clear_error(tmp_path):
    with pytest.raises(IslesbenchError, match="no ISLES 2018 cases found"):
        discover_cohort(tmp_path)
    with pytest.raises(IslesbenchError, match="does not exist"):
        discover_cohort(tmp_path / "missing")


def test_nifti_directly_in_case_folder(tmp_path):
    folder = write_case(tmp_path, 3)
    for sub in [p for p in folder.iterdir() if p.is_dir()]:
        nii = next(sub.glob("*.nii"))
        nii.rename(folder / nii.name)
        sub.rmdir()
    (case,) = discover_cohort(tmp_path)
    assert validate_case(case) == []
    assert load_case(case).shape == SHAPE


def test_load_good_case(cohort):
    cases = discover_cohort(cohort)
    assert all(validate_case(c) == [] for c in cases)
    case = load_case(cases[0])
    assert case.shape == SHAPE
    assert set(case.volumes) == set(MAP_MODALITIES)
    assert all(v.dtype == np.float32 and v.shape == SHAPE for v in case.volumes.values())
    assert case.mask.dtype == bool and case.mask.sum() == 9
    np.testing.assert_array_equal(case.affine, _affine())
    assert case.spacing == pytest.approx((0.75, 0.75, 5.0))
    cbv = case.volumes["CT_CBV"]  # int16 with scl_slope 0.001 on disk
    assert 0.09 < cbv.min() and cbv.max() < 5.01
    test_case = load_case(cases[3])
    assert test_case.mask is None
    pwi, dt = load_pwi(cases[0])
    assert pwi.shape == SHAPE + (4,) and pwi.dtype == np.float32 and dt == pytest.approx(1.5)


def test_read_save_round_trip(tmp_path):
    data = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    for name in ("a.nii", "a.nii.gz"):
        save_nifti(tmp_path / name, data, _affine())
        back, affine, spacing = read_nifti(tmp_path / name)
        np.testing.assert_array_equal(back, data)
        np.testing.assert_array_equal(affine, _affine())
        assert spacing == pytest.approx((0.75, 0.75, 5.0))
    assert not list(tmp_path.glob(".*tmp*"))
    with pytest.raises(CaseError, match="does not exist"):
        read_nifti(tmp_path / "case_4" / "none.nii")


def _replace(folder: Path, modality: str, data, dtype=np.float32, affine=None, scaling=None) -> Path:
    path = modality_file(folder, modality)
    save_nifti(path, data, _affine() if affine is None else affine, dtype=dtype, scaling=scaling)
    return path


def _one_fault(folder: Path, path, words: str) -> str:
    faults = faults_of(folder)
    assert len(faults) == 1, faults
    line = faults[0]
    assert line.startswith(f"{folder.name}: {path}: "), line
    assert words in line, line
    assert "\n" not in line
    return line


def test_missing_modality(tmp_path):
    folder = write_case(tmp_path, 4)
    shutil.rmtree(modality_file(folder, "CT_MTT").parent)
    line = _one_fault(folder, folder / "SMIR.Brain.XX.O.CT_MTT.<ID>", "missing modality CT_MTT")
    (case,) = discover_cohort(folder)
    with pytest.raises(CaseError) as info:
        load_case(case)
    assert str(info.value) == line


def test_missing_mask_only_required_for_training(tmp_path):
    folder = write_case(tmp_path, 4)
    shutil.rmtree(modality_file(folder, "OT").parent)
    _one_fault(folder, folder / "SMIR.Brain.XX.O.OT.<ID>", "missing modality OT")
    (case,) = discover_cohort(folder)
    assert validate_case(case, require_mask=False) == []


def test_duplicate_modality(tmp_path):
    folder = write_case(tmp_path, 4)
    src = modality_file(folder, "CT_CBF")
    dup = folder / "SMIR.Brain.XX.O.CT_CBF.999999" / "SMIR.Brain.XX.O.CT_CBF.999999.nii"
    dup.parent.mkdir()
    shutil.copy(src, dup)
    _one_fault(folder, dup, "duplicate CT_CBF")


def test_shape_mismatch(tmp_path):
    folder = write_case(tmp_path, 4)
    path = _replace(folder, "CT_Tmax", np.zeros((12, 10, 4), np.float32))
    _one_fault(folder, path, "shape (12, 10, 4) disagrees")


def test_affine_mismatch_and_tolerance(tmp_path):
    folder = write_case(tmp_path, 4)
    shifted = _affine(z0=-17.5)
    path = _replace(folder, "CT_CBV", np.ones(SHAPE), affine=shifted)
    _one_fault(folder, path, "affine disagrees")
    nearly = _affine(z0=-20.0 + 1e-4)
    _replace(folder, "CT_CBV", np.ones(SHAPE), affine=nearly)
    assert faults_of(folder) == []


def test_nan_values(tmp_path):
    folder = write_case(tmp_path, 4)
    data = np.ones(SHAPE, np.float32)
    data[1, 2, 0] = np.nan
    data[2, 2, 0] = np.inf
    path = _replace(folder, "CT_CBF", data)
    _one_fault(folder, path, "2 NaN/Inf")


@pytest.mark.parametrize("values", [(0, 255), (0, 7), (0.0, 1.0)])
def test_repairable_masks(tmp_path, values):
    folder = write_case(tmp_path, 4)
    mask = np.zeros(SHAPE, np.float32)
    mask[2:5, 2:4, 1] = values[1]
    dtype = np.float32 if isinstance(values[1], float) else np.uint8
    _replace(folder, "OT", mask, dtype=dtype)
    assert faults_of(folder) == []
    (case,) = discover_cohort(folder)
    loaded = load_case(case).mask
    assert loaded.dtype == bool and loaded.sum() == 6


@pytest.mark.parametrize("values, words", [((1, 2), "2 distinct positive values"), ((1, -1), "negative value")])
def test_non_binary_masks(tmp_path, values, words):
    folder = write_case(tmp_path, 4)
    mask = np.zeros(SHAPE, np.int16)
    mask[2:5, 2:4, 1] = values[0]
    mask[6:8, 2:4, 1] = values[1]
    path = _replace(folder, "OT", mask, dtype=np.int16)
    _one_fault(folder, path, words)


def test_truncated_and_unreadable_files(tmp_path):
    folder = write_case(tmp_path, 4)
    path = modality_file(folder, "CT_MTT")
    path.write_bytes(path.read_bytes()[:-100])
    _one_fault(folder, path, "truncated file")
    path.write_bytes(b"not a nifti file at all")
    _one_fault(folder, path, "unreadable NIfTI file")


def test_truncated_gzip(tmp_path):
    folder = write_case(tmp_path, 4)
    path = modality_file(folder, "CT")
    gz = path.with_name(path.name + ".gz")
    data, affine, _ = read_nifti(path)
    save_nifti(gz, data, affine)
    path.unlink()
    gz.write_bytes(gz.read_bytes()[: len(gz.read_bytes()) // 2])
    _one_fault(folder, gz, "")


def test_dimensions(tmp_path):
    folder = write_case(tmp_path, 4)
    # trailing singleton: repaired
    _replace(folder, "CT_CBF", np.ones(SHAPE + (1,), np.float32))
    assert faults_of(folder) == []
    (case,) = discover_cohort(folder)
    assert load_case(case).volumes["CT_CBF"].shape == SHAPE
    # a real fourth dimension in a map: rejected
    path = _replace(folder, "CT_CBF", np.ones(SHAPE + (2,), np.float32))
    _one_fault(folder, path, "wrong number of dimensions")
    _replace(folder, "CT_CBF", np.ones(SHAPE, np.float32))
    # a 3-D PWI: rejected when asked for
    path = _replace(folder, "CT_4DPWI", np.ones(SHAPE, np.int16), dtype=np.int16)
    (case,) = discover_cohort(folder)
    faults = validate_case(case, modalities=MAP_MODALITIES + ("CT_4DPWI",))
    assert len(faults) == 1 and f"{path}: wrong number of dimensions" in faults[0] and "expected 4-D" in faults[0]
    with pytest.raises(CaseError, match="expected 4-D"):
        load_pwi(case)


def test_all_faults_listed_at_once(tmp_path):
    folder = write_case(tmp_path, 4)
    shutil.rmtree(modality_file(folder, "CT").parent)
    _replace(folder, "CT_MTT", np.full(SHAPE, np.nan, np.float32))
    faults = faults_of(folder)
    assert len(faults) == 2
    assert "missing modality CT" in faults[0] and "NaN/Inf" in faults[1]


def test_scaling_is_applied(tmp_path):
    folder = write_case(tmp_path, 4)
    hu = np.rint(np.random.default_rng(1).uniform(-1000, 1500, SHAPE))
    path = _replace(folder, "CT", hu, dtype=np.uint16, scaling=(1.0, -1024.0))
    assert nib.load(str(path)).get_data_dtype() == np.uint16
    (case,) = discover_cohort(folder)
    np.testing.assert_array_equal(load_case(case).volumes["CT"], hu.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fractional_mask_is_refused(tmp_path, dtype):
    """{0, 0.5} is a probability or interpolated map: nonzero-is-lesion and an integer cast disagree on it."""
    folder = write_case(tmp_path, 4)
    mask = np.zeros(SHAPE, dtype)
    mask[2:5, 2:4, 1] = 0.5
    path = _replace(folder, "OT", mask, dtype=dtype)
    _one_fault(folder, path, "positive value 0.5 is not a whole number")


def test_a_mask_scaled_to_one_up_to_round_off_is_binary(tmp_path):
    """ISLES'24's own sub-stroke0158 mask: uint16 65535 with scl_slope float32(1/65535), 0.99999999977 in float64."""
    folder = write_case(tmp_path, 4)
    mask = np.zeros(SHAPE, np.float64)
    mask[2:5, 2:4, 1] = 1.0  # stored as (1 - 0) / slope = 65535
    path = _replace(folder, "OT", mask, dtype=np.uint16, scaling=(float(np.float32(1 / 65535)), 0.0))
    assert nib.load(str(path)).dataobj.get_unscaled().max() == 65535
    assert faults_of(folder) == []
    (case,) = discover_cohort(folder)
    assert load_case(case).mask.sum() == 6
