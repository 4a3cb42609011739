"""islesbench.evaluation.folders: matching, geometry checks, files written, ISLES-layout references."""

import argparse
import math
import types

import nibabel as nib
import numpy as np
import pytest

from islesbench.cli import main
from islesbench.commands import evaluate as evaluate_command
from islesbench.errors import CaseError, CohortError, IslesbenchError
from islesbench.evaluation import folders as evaluate
from islesbench.evaluation.files import read_case_metrics, read_summary
from islesbench.evaluation.metrics import case_metrics
from islesbench.evaluation.names import METRIC_NAMES

AFFINE = np.diag([0.9, 0.9, 5.0, 1.0])
SHAPE = (12, 10, 4)


def save(path, data, affine=AFFINE):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def masks():
    ref = np.zeros(SHAPE, np.uint8)
    ref[3:7, 2:6, 1:3] = 1
    pred = np.zeros(SHAPE, np.uint8)
    pred[4:8, 2:6, 1:3] = 1
    return pred, ref


@pytest.fixture
def folders(tmp_path):
    pred, ref = masks()
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    save(ref_dir / "case_1.nii.gz", ref)
    save(ref_dir / "case_2.nii", ref)
    save(ref_dir / "case_10.nii.gz", np.zeros(SHAPE, np.uint8))
    save(pred_dir / "case_1.nii.gz", pred)
    save(pred_dir / "case_1_prob.nii.gz", np.full(SHAPE, 0.9, np.float32))  # ignored
    save(pred_dir / "case_2.nii.gz", pred.astype(np.float32) * 0.7)  # a probability map
    save(pred_dir / "case_10.nii.gz", np.zeros(SHAPE, np.uint8))
    return pred_dir, ref_dir, tmp_path / "out"


def test_evaluate_folder_writes_metrics_and_summary(folders, capsys):
    pred_dir, ref_dir, out = folders
    summary = evaluate.evaluate_folder(pred_dir, ref_dir, out)
    rows = read_case_metrics(out / "metrics.csv")
    assert [r["case"] for r in rows] == ["case_1", "case_2", "case_10"]  # natural order
    pred, ref = masks()
    # spacing exactly as stored in the header (float32), as the ISLES evaluator reads it
    spacing = tuple(float(z) for z in nib.load(str(ref_dir / "case_1.nii.gz")).header.get_zooms())
    assert spacing[0] == float(np.float32(0.9))
    expected = case_metrics(pred, ref, spacing)
    for name in METRIC_NAMES:
        assert rows[0][name] == pytest.approx(expected[name], rel=1e-12)
        assert rows[1][name] == pytest.approx(expected[name], rel=1e-12)  # 0.7 > 0.5 threshold
    assert rows[2]["dice"] == 1.0 and rows[2]["hd"] == 0.0  # both empty
    on_disk = read_summary(out / "summary.json")
    assert on_disk["n_cases"] == 3 and on_disk["threshold"] == 0.5
    assert on_disk["metrics"]["dice"]["mean"] == pytest.approx(summary["metrics"]["dice"]["mean"])
    printed = capsys.readouterr().out
    assert "[1/3] case_1" in printed and "[3/3] case_10" in printed


def test_threshold_applies_to_probability_maps(folders):
    pred_dir, ref_dir, out = folders
    evaluate.evaluate_folder(pred_dir, ref_dir, out, threshold=0.8, log=None)
    rows = {r["case"]: r for r in read_case_metrics(out / "metrics.csv")}
    assert rows["case_2"]["pred_volume_ml"] == 0.0 and math.isinf(rows["case_2"]["hd"])
    assert rows["case_1"]["dice"] == 0.75  # a binary mask is unaffected


def test_shape_mismatch_names_the_case(folders):
    pred_dir, ref_dir, out = folders
    save(pred_dir / "case_2.nii.gz", np.zeros((12, 10, 5), np.uint8))
    with pytest.raises(CaseError, match="case_2") as info:
        evaluate.evaluate_folder(pred_dir, ref_dir, out, log=None)
    assert "shape" in str(info.value)
    assert not (out / "metrics.csv").exists()


def test_affine_mismatch_names_every_case(folders):
    pred_dir, ref_dir, out = folders
    shifted = AFFINE.copy()
    shifted[0, 3] = 2.0
    save(pred_dir / "case_1.nii.gz", masks()[0], affine=shifted)
    save(pred_dir / "case_10.nii.gz", np.zeros(SHAPE, np.uint8), affine=shifted)
    with pytest.raises(CohortError) as info:
        evaluate.evaluate_folder(pred_dir, ref_dir, out, log=None)
    assert "case_1:" in str(info.value) and "case_10:" in str(info.value) and "affine" in str(info.value)


def test_missing_predictions_are_listed(folders):
    pred_dir, ref_dir, out = folders
    (pred_dir / "case_2.nii.gz").unlink()
    (pred_dir / "case_10.nii.gz").unlink()
    with pytest.raises(IslesbenchError, match="2 reference") as info:
        evaluate.evaluate_folder(pred_dir, ref_dir, out, log=None)
    assert "case_2" in str(info.value) and "case_10" in str(info.value)
    summary = evaluate.evaluate_folder(pred_dir, ref_dir, out, only_predicted=True, log=None)
    assert summary["cases"] == ["case_1"]


def test_prediction_without_reference_is_an_error(folders):
    pred_dir, ref_dir, out = folders
    save(pred_dir / "case_99.nii.gz", np.zeros(SHAPE, np.uint8))
    with pytest.raises(IslesbenchError, match="case_99"):
        evaluate.evaluate_folder(pred_dir, ref_dir, out, log=None)


def test_case_subset(folders):
    pred_dir, ref_dir, out = folders
    summary = evaluate.evaluate_folder(pred_dir, ref_dir, out, cases=["case_10", "case_2"], log=None)
    assert summary["cases"] == ["case_2", "case_10"]
    with pytest.raises(IslesbenchError, match="case_7"):
        evaluate.evaluate_folder(pred_dir, ref_dir, out, cases=["case_7"], log=None)


def test_run_command_prints_table(folders, capsys):
    pred_dir, ref_dir, out = folders
    parser = argparse.ArgumentParser()
    evaluate_command.configure_parser(parser)
    args = parser.parse_args(["--pred", str(pred_dir), "--ref", str(ref_dir), "--out", str(out)])
    assert evaluate_command.run_command(args) == 0
    printed = capsys.readouterr().out
    assert "dice" in printed and "assd_pooled" in printed and "metrics.csv" in printed


def test_isles_layout_references(tmp_path, monkeypatch):
    """The ISLES branch uses islesbench.layouts.discover_cohort; a stand-in keeps this test independent."""
    pred, ref = masks()
    root = tmp_path / "TRAINING"
    cases = []
    for n, with_ot in ((1, True), (2, True)):
        case_dir = root / f"case_{n}"
        ot = save(case_dir / f"SMIR.Brain.XX.O.OT.{100 + n}" / f"SMIR.Brain.XX.O.OT.{100 + n}.nii", ref)
        cbf = save(case_dir / f"SMIR.Brain.XX.O.CT_CBF.{200 + n}" / f"SMIR.Brain.XX.O.CT_CBF.{200 + n}.nii", ref)
        files = {"CT_CBF": cbf, **({"OT": ot} if with_ot else {})}
        cases.append(types.SimpleNamespace(case_id=f"case_{n}", files=files))
    monkeypatch.setattr(evaluate, "discover_cohort", lambda r: list(cases))

    pred_dir = tmp_path / "pred"
    save(pred_dir / "case_1.nii.gz", pred)
    save(pred_dir / "case_2.nii.gz", ref)
    summary = evaluate.evaluate_folder(pred_dir, root, tmp_path / "out", log=None)
    assert summary["cases"] == ["case_1", "case_2"]
    assert summary["metrics"]["dice"]["mean"] == pytest.approx((0.75 + 1.0) / 2)

    del cases[1].files["OT"]
    with pytest.raises(IslesbenchError, match="case_2: no OT"):
        evaluate.evaluate_folder(pred_dir, root, tmp_path / "out", log=None)


def test_threshold_is_inclusive(folders):
    pred_dir, ref_dir, out = folders
    evaluate.evaluate_folder(pred_dir, ref_dir, out, threshold=0.7, log=None)  # case_2 holds 0.7 exactly
    rows = {r["case"]: r for r in read_case_metrics(out / "metrics.csv")}
    assert rows["case_2"]["dice"] == 0.75


def test_fractional_reference_is_refused_with_the_file_named(folders, capsys):
    """A reference holding {0, 0.5} was read as binary (nonzero = lesion) without a word; it is refused."""
    pred_dir, ref_dir, out = folders
    ref = masks()[1].astype(np.float32) * 0.5
    path = save(ref_dir / "case_1.nii.gz", ref)
    with pytest.raises(CaseError) as info:
        evaluate.evaluate_folder(pred_dir, ref_dir, out, log=None)
    line = str(info.value)
    assert line.startswith(f"case_1: {path}: ") and "0.5 is not a whole number" in line and "\n" not in line
    assert not (out / "metrics.csv").exists()
    assert main(["evaluate", "--pred", str(pred_dir), "--ref", str(ref_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "Traceback" not in err[0]
