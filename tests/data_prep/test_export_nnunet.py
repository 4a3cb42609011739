"""`islesbench export --format nnunet`: the raw dataset nnU-Net v2 expects, on islesbench's folds.

The rules checked are nnU-Net v2's documentation (github.com/MIC-DKFZ/nnUNet, documentation/dataset_format.md):
  R1 a dataset folder `Dataset<ID:03d>_<NAME>` holding dataset.json, imagesTr, labelsTr and optionally imagesTs;
  R2 images `<case>_<XXXX>.<file_ending>`, XXXX a four-digit channel identifier; every case has the same
     channels in the same order; segmentations `<case>.<file_ending>`;
  R3 segmentations are integer maps with background 0 and consecutive labels; within a case every image
     and the segmentation share one geometry (shape, spacing, affine);
  R4 dataset.json: "channel_names" (identifier -> name), "labels" (name -> integer, background 0),
     "numTraining", "file_ending";
  R5 imagesTs holds the cases without a segmentation;
and documentation/manual_data_splits.md:
  R6 splits_final.json is a list with one {"train": [...], "val": [...]} per fold, read from
     nnUNet_preprocessed/Dataset<ID>_<NAME>/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from islesbench import cli, layouts
from islesbench.data_prep.export_nnunet import case_files_of, export_nnunet
from islesbench.data_prep.prepare import prepare_cohort
from islesbench.errors import IslesbenchError
from islesbench.imaging.nifti_io import affines_agree, read_nifti
from islesbench.storage import nnunet_dataset

CHANNEL_FILE = r"^(.+)_(\d{4})\.nii\.gz$"


@pytest.fixture(scope="module")
def exported(tiny_prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("nnunet_raw")
    pre = tmp_path_factory.mktemp("nnunet_preprocessed")
    dataset = export_nnunet(tiny_prepared, out, 502, "TinyISLES", preprocessed=pre, log=lambda *_: None)
    return tiny_prepared, dataset, pre


@pytest.fixture(scope="module")
def prepared24(tiny_isles24, tmp_path_factory):
    return prepare_cohort(tiny_isles24, tmp_path_factory.mktemp("prep24_export"), folds=3, seed=0, grid=32)


def check_dataset_rules(prepared, dataset):
    """R1-R5 against the prepared cohort: names, channels, geometry, labels, dataset.json."""
    import re

    channels = prepared.modalities
    training = prepared.case_ids("TRAINING")
    testing = prepared.case_ids("TESTING")
    assert dataset.root.name.startswith("Dataset") and re.match(r"^Dataset\d{3}_[A-Za-z0-9_-]+$", dataset.root.name)
    assert {p.name for p in dataset.root.iterdir()} >= {"dataset.json", "imagesTr", "labelsTr"}  # R1
    info = json.loads(dataset.dataset_json.read_text())
    assert info["channel_names"] == {str(i): c for i, c in enumerate(channels)}  # R4
    assert info["labels"] == {"background": 0, "lesion": 1}
    assert info["numTraining"] == len(training) and info["file_ending"] == ".nii.gz"
    for folder, cases in (("imagesTr", training), ("imagesTs", testing)):
        names = sorted(os.listdir(dataset.root / folder)) if cases else []
        found = {}
        for name in names:  # R2: every file is <case>_<XXXX>.nii.gz
            m = re.match(CHANNEL_FILE, name)
            assert m, name
            found.setdefault(m.group(1), []).append(int(m.group(2)))
        assert found == {c: list(range(len(channels))) for c in cases}  # R2: the same channels in order; R5
    assert sorted(os.listdir(dataset.labels_tr)) == sorted(f"{c}.nii.gz" for c in training)
    for case_id in training + testing:
        entry = prepared.cases[case_id]
        case = case_files_of(prepared, case_id)
        is_training = case_id in training
        files = dataset.case_files(case_id, len(channels), is_training)
        for index, (path, modality) in enumerate(zip(files, channels)):
            data, affine, spacing = read_nifti(path)
            source, source_affine, _ = layouts.load_volume(case, modality)
            # input geometry, stored voxel order (orientation as read), values as read (scaling applied)
            assert data.shape == tuple(entry["shape"]) and np.array_equal(data, source), (path, index)
            assert np.allclose(affine, np.asarray(entry["affine"]), atol=1e-5) and affines_agree(affine, source_affine)
            assert np.allclose(spacing, entry["spacing"])
        if is_training:  # R3: a 0/1 integer map in the case's geometry
            label, label_affine, _ = read_nifti(dataset.label_path(case_id))
            import nibabel as nib

            assert nib.load(dataset.label_path(case_id)).get_data_dtype() == np.uint8  # an integer map
            assert set(np.unique(label)) <= {0, 1}
            assert np.array_equal(label > 0, layouts.load_volume(case, layouts.MASK)[0])
            assert np.array_equal(label_affine, read_nifti(files[0])[1])


def check_splits(prepared, dataset, preprocessed=None):
    """R6, and islesbench's folds exactly, patient by patient."""
    splits = json.loads(dataset.splits_final.read_text())
    assert isinstance(splits, list) and all(set(f) == {"train", "val"} for f in splits)
    assert splits == [{"train": f["train"], "val": f["val"]} for f in prepared.splits()]
    patient_of = prepared.patient_of()
    for fold in splits:
        val_patients = {patient_of.get(c, c) for c in fold["val"]}
        assert not {patient_of.get(c, c) for c in fold["train"]} & val_patients
    assert sorted(c for f in splits for c in f["val"]) == sorted(prepared.case_ids("TRAINING"))
    if preprocessed is not None:
        copy = nnunet_dataset.preprocessed_splits_path(preprocessed, dataset.root.name)
        assert json.loads(copy.read_text()) == splits


def test_isles2018_export_has_nnunet_names_and_islesbench_folds(exported):
    prepared, dataset, pre = exported
    assert dataset.root.name == "Dataset502_TinyISLES"
    assert prepared.case_ids("TESTING"), "the tiny cohort has a test case, exported to imagesTs"
    check_dataset_rules(prepared, dataset)
    check_splits(prepared, dataset, pre)


def test_isles24_export_keeps_each_subjects_orientation(prepared24, tmp_path):
    dataset = export_nnunet(prepared24, tmp_path, 503, "Tiny24", log=lambda *_: None)
    check_dataset_rules(prepared24, dataset)
    check_splits(prepared24, dataset)
    import nibabel as nib

    codes = {nib.aff2axcodes(read_nifti(dataset.image_path(c, 0, True))[1]) for c in prepared24.case_ids("TRAINING")}
    assert len(codes) > 1, "the synthetic subjects are stored RAS, LPS and PSR; each keeps its own"


def test_rerun_skips_unchanged_cases_and_rewrites_a_changed_one(exported, tmp_path):
    prepared, _, _ = exported
    lines = []
    first = export_nnunet(prepared, tmp_path, 504, "Again", log=lines.append)
    stamps = {p: p.stat().st_mtime_ns for p in first.root.rglob("*") if p.is_file()}
    lines.clear()
    export_nnunet(prepared, tmp_path, 504, "Again", log=lines.append)
    assert all("unchanged, skipped" in line for line in lines) and len(lines) == len(prepared.cases)
    assert {p: p.stat().st_mtime_ns for p in first.root.rglob("*") if p.is_file()} == stamps
    victim = first.label_path(prepared.case_ids("TRAINING")[0])
    victim.unlink()  # a killed export: the case is written again, the rest skipped
    lines.clear()
    export_nnunet(prepared, tmp_path, 504, "Again", log=lines.append)
    assert victim.is_file() and sum("skipped" not in line for line in lines) == 1


def test_a_folder_holding_other_cases_is_refused(exported, tmp_path):
    prepared, _, _ = exported
    dataset = export_nnunet(prepared, tmp_path, 505, "Foreign", log=lambda *_: None)
    shutil.copy(dataset.image_path(prepared.case_ids("TRAINING")[0], 0), dataset.images_tr / "stranger_0000.nii.gz")
    with pytest.raises(IslesbenchError, match=r"imagesTr holds case\(s\) not in this cohort \(stranger\)"):
        export_nnunet(prepared, tmp_path, 505, "Foreign", log=lambda *_: None)


def test_a_bad_raw_case_is_refused_as_prepare_refuses_it(tiny_cohort, tmp_path, capsys):
    raw = tmp_path / "raw"
    shutil.copytree(tiny_cohort, raw)
    bad = next(p for p in sorted((raw / "TRAINING" / "case_2").rglob("*.nii*")) if ".CT_CBF." in p.name)
    bad.write_bytes(bad.read_bytes()[:400])
    code = cli.main(["export", "--format", "nnunet", "--data", str(raw), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err and "Traceback" not in err
    assert not (tmp_path / "out" / "Dataset501_ISLES").exists()


def test_export_command_prepares_a_raw_cohort_with_islesbench_folds(tiny_cohort, tmp_path, capsys):
    out, pre = tmp_path / "raw_export", tmp_path / "pre"
    code = cli.main(["export", "--format", "nnunet", "--data", str(tiny_cohort), "--out", str(out), "--folds", "2",
                     "--seed", "0", "--preprocessed", str(pre), "--dataset-id", "7", "--name", "Tiny"])
    assert code == 0, capsys.readouterr().err
    from islesbench.storage.manifest import PreparedData

    prepared = PreparedData(out / "islesbench-prepared")
    dataset = nnunet_dataset.RawDataset(out / "Dataset007_Tiny")
    check_splits(prepared, dataset, pre)
    assert len(prepared.splits()) == 2


def nnunet_python() -> str | None:
    """A Python with nnunetv2 (this one, or $NNUNET_PYTHON: nnU-Net lives in its own environment)."""
    for python in filter(None, (os.environ.get("NNUNET_PYTHON"), sys.executable)):
        if subprocess.run([python, "-c", "import nnunetv2"], capture_output=True).returncode == 0:
            return python
    return None


@pytest.mark.slow
def test_nnunets_own_integrity_check_accepts_the_export(exported, tmp_path):
    python = nnunet_python()
    if python is None:
        pytest.skip("nnunetv2 is not importable here nor in $NNUNET_PYTHON (install it in its own environment)")
    _, dataset, _ = exported
    raw = tmp_path / "nnUNet_raw"
    shutil.copytree(dataset.root, raw / dataset.root.name)
    env = dict(os.environ, nnUNet_raw=str(raw), nnUNet_preprocessed=str(tmp_path / "pre"),
               nnUNet_results=str(tmp_path / "results"))
    code = ("from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity; "
            f"verify_dataset_integrity({str(raw / dataset.root.name)!r}, num_processes=1)")
    result = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
