"""`islesbench import`: predictions made elsewhere become a run folder scored exactly as `islesbench evaluate`
scores the same files, on islesbench's folds, or are refused with one line naming the file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy import ndimage

from islesbench import cli
from islesbench.evaluation.files import read_case_metrics
from islesbench.imaging.nifti_io import read_nifti
from islesbench.imaging.nifti_write import save_nifti
from islesbench.reports.results_reader import read_run
from islesbench.storage import run_layout


def reference(prepared, case_id):
    data, affine, spacing = read_nifti(prepared.cases[case_id]["source"]["OT"])
    return data > 0, affine, spacing


def predicted_mask(prepared, case_id, index: int) -> np.ndarray:
    """A plausible prediction: the reference dilated, eroded or shifted, in turn (one case left empty)."""
    ref = reference(prepared, case_id)[0]
    if index % 3 == 0:
        return ndimage.binary_dilation(ref, iterations=1)
    if index % 3 == 1:
        return np.roll(ref, 2, axis=0)
    return ndimage.binary_erosion(ref) if index != 5 else np.zeros_like(ref)


def write_nnunet_predictions(prepared, root, values=None):
    """nnU-Net's model folder: fold_<k>/validation/<case>.nii.gz (uint8 0/1) plus its summary.json."""
    index = 0
    for k, fold in enumerate(prepared.splits()):
        folder = root / f"fold_{k}" / "validation"
        for case_id in fold["val"]:
            _, affine, spacing = reference(prepared, case_id)
            mask = predicted_mask(prepared, case_id, index)
            array = mask.astype(np.uint8) if values is None else values(mask)
            save_nifti(folder / f"{case_id}.nii.gz", array, affine, spacing,
                       dtype=np.uint8 if values is None else np.float32)
            index += 1
        (folder / "summary.json").write_text("{}")
    return root


@pytest.fixture
def nnunet_preds(tiny_prepared, tmp_path):
    return write_nnunet_predictions(tiny_prepared, tmp_path / "nnUNetTrainer__nnUNetPlans__2d")


def run_cli(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_imported_metrics_equal_evaluate_on_the_same_files(tiny_prepared, nnunet_preds, tmp_path, capsys):
    runs = tmp_path / "runs"
    code, out, err = run_cli(["import", "--name", "nnunet-2d", "--pred", str(nnunet_preds), "--data",
                              str(tiny_prepared.root), "--out", str(runs), "--description", "test"], capsys)
    assert code == 0, err
    raw = tiny_prepared.manifest["source"] + "/TRAINING"  # the ISLES 2018 reference masks (OT)
    for k, fold in enumerate(tiny_prepared.splits()):
        expected = tmp_path / f"evaluate_{k}"
        code, _, err = run_cli(["evaluate", "--pred", str(nnunet_preds / f"fold_{k}" / "validation"), "--ref", raw,
                                "--only-predicted", "--out", str(expected)], capsys)
        assert code == 0, err
        imported = read_case_metrics(run_layout.fold_paths(runs, "nnunet-2d", k).metrics_csv)
        assert imported == read_case_metrics(expected / "metrics.csv")
        assert [r["case"] for r in imported] == fold["val"]
    config = run_layout.read_run_config(runs / "nnunet-2d")
    assert run_layout.is_external(config) and config["external"]["training_config"] is None
    assert config["folds"] == list(range(len(tiny_prepared.splits())))
    assert config["external"]["source"] == str(nnunet_preds.resolve())
    run = read_run(runs / "nnunet-2d")  # the report reads it like any run
    assert sorted(r["case"] for r in run.rows) == sorted(tiny_prepared.case_ids("TRAINING"))
    assert run.folds == list(range(len(tiny_prepared.splits()))) and not run.unfinished_folds


def test_a_flat_folder_of_probability_maps_is_thresholded(tiny_prepared, nnunet_preds, tmp_path):
    from islesbench.inference.external import import_predictions

    flat = tmp_path / "flat"
    flat.mkdir()
    for k, _ in enumerate(tiny_prepared.splits()):
        for path in (nnunet_preds / f"fold_{k}" / "validation").glob("*.nii.gz"):
            data, affine, spacing = read_nifti(path)
            save_nifti(flat / path.name, np.where(data > 0, 0.8, 0.3).astype(np.float32), affine, spacing)
    runs = tmp_path / "runs"
    import_predictions("flat", flat, tiny_prepared, runs, probabilities=True, threshold=0.5, log=lambda *_: 0)
    import_predictions("masks", nnunet_preds, tiny_prepared, runs, log=lambda *_: 0)
    for k, _ in enumerate(tiny_prepared.splits()):
        a = read_case_metrics(run_layout.fold_paths(runs, "flat", k).metrics_csv)
        b = read_case_metrics(run_layout.fold_paths(runs, "masks", k).metrics_csv)
        assert a == b
        paths = run_layout.fold_paths(runs, "flat", k)
        assert list(paths.validation_dir.glob("*_prob.nii.gz")), "probability maps kept for an ensemble"
        assert json.loads(paths.threshold_json.read_text())["threshold"] == 0.5


def test_rerun_skips_and_another_source_under_the_name_is_refused(tiny_prepared, nnunet_preds, tmp_path):
    from islesbench.errors import IslesbenchError
    from islesbench.inference.external import import_predictions

    runs, lines = tmp_path / "runs", []
    import_predictions("ext", nnunet_preds, tiny_prepared, runs, log=lines.append)
    lines.clear()
    import_predictions("ext", nnunet_preds, tiny_prepared, runs, log=lines.append)
    assert all("imported earlier, skipped" in line for line in lines)
    other = tmp_path / "other"
    shutil.copytree(nnunet_preds, other)
    with pytest.raises(IslesbenchError, match="holds other imported predictions"):
        import_predictions("ext", other, tiny_prepared, runs, log=lines.append)


def _break_missing(prepared, preds):
    case = prepared.splits()[1]["val"][0]
    path = preds / "fold_1" / "validation" / f"{case}.nii.gz"
    path.unlink()
    return path, "missing prediction"


def _break_other_fold(prepared, preds):
    case = prepared.splits()[1]["val"][0]
    path = preds / "fold_0" / "validation" / f"{case}.nii.gz"
    shutil.copy(preds / "fold_1" / "validation" / f"{case}.nii.gz", path)
    return path, "islesbench validates it in fold 1, not fold 0"


def _break_shape(prepared, preds):
    case = prepared.splits()[0]["val"][0]
    path = preds / "fold_0" / "validation" / f"{case}.nii.gz"
    data, affine, spacing = read_nifti(path)
    save_nifti(path, data[:-1].astype(np.uint8), affine, spacing, dtype=np.uint8)
    return path, "shape"


def _break_affine(prepared, preds):
    case = prepared.splits()[0]["val"][0]
    path = preds / "fold_0" / "validation" / f"{case}.nii.gz"
    data, affine, spacing = read_nifti(path)
    moved = affine.copy()
    moved[:3, 3] += 5.0
    save_nifti(path, data.astype(np.uint8), moved, spacing, dtype=np.uint8)
    return path, "affine differs"


def _break_binary(prepared, preds):
    case = prepared.splits()[0]["val"][0]
    path = preds / "fold_0" / "validation" / f"{case}.nii.gz"
    data, affine, spacing = read_nifti(path)
    save_nifti(path, np.where(data > 0, 0.9, 0.2).astype(np.float32), affine, spacing)
    return path, "not a binary mask"


@pytest.mark.parametrize("damage", [_break_missing, _break_other_fold, _break_shape, _break_affine, _break_binary])
def test_bad_predictions_are_refused_naming_the_file(tiny_prepared, nnunet_preds, tmp_path, capsys, damage):
    path, fault = damage(tiny_prepared, nnunet_preds)
    runs = tmp_path / "runs"
    code, _, err = run_cli(["import", "--name", "ext", "--pred", str(nnunet_preds), "--data",
                            str(tiny_prepared.root), "--out", str(runs)], capsys)
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert str(path) in err and fault in err
    assert not (runs / "ext" / "fold_0" / "DONE").exists()


def test_folds_claimed_are_recorded_and_others_ignored(tiny_prepared, nnunet_preds, tmp_path):
    from islesbench.inference.external import import_predictions

    shutil.rmtree(nnunet_preds / "fold_1")
    runs = tmp_path / "runs"
    import_predictions("fold0", nnunet_preds, tiny_prepared, runs, folds=[0], log=lambda *_: 0)
    assert run_layout.read_run_config(runs / "fold0")["folds"] == [0]
    assert [k for k, _ in run_layout.list_folds(runs / "fold0")] == [0]
    code = cli.main(["import", "--name", "all", "--pred", str(nnunet_preds), "--data", str(tiny_prepared.root),
                     "--out", str(runs)])
    assert code == 2
