"""The HD/ASSD convention end to end: `islesbench evaluate --convention`, the files it writes, and
where the ISLES evaluator's definitions part from medpy's."""

import nibabel as nib
import numpy as np
import pytest

from islesbench import cli
from islesbench.evaluation import folders as evaluate
from islesbench.evaluation.files import read_case_metrics, read_summary
from islesbench.evaluation.metrics import case_metrics

AFFINE = np.diag([0.9, 0.9, 6.0, 1.0])
SHAPE = (14, 12, 4)


def _folders(tmp_path):
    ref = np.zeros(SHAPE, np.uint8)
    ref[0:5, 2:7, 0:3] = 1  # touches the volume border: the conventions' surfaces differ there
    pred = np.zeros(SHAPE, np.uint8)
    pred[1:6, 3:9, 1:4] = 1
    for folder, data in (("ref", ref), ("pred", pred)):
        (tmp_path / folder).mkdir()
        nib.save(nib.Nifti1Image(data, AFFINE), str(tmp_path / folder / "case_1.nii.gz"))
    return tmp_path / "pred", tmp_path / "ref", pred.astype(bool), ref.astype(bool)


@pytest.mark.parametrize("convention", ["isles", "medpy"])
def test_evaluate_records_the_convention_in_both_files(tmp_path, convention):
    pred_dir, ref_dir, pred, ref = _folders(tmp_path)
    out = tmp_path / f"out-{convention}"
    evaluate.evaluate_folder(pred_dir, ref_dir, out, convention=convention, log=None)
    (row,) = read_case_metrics(out / "metrics.csv")
    assert row["convention"] == convention
    summary = read_summary(out / "summary.json")
    assert summary["convention"] == convention and summary["convention_label"]
    spacing = tuple(float(np.float32(z)) for z in (0.9, 0.9, 6.0))
    expected = case_metrics(pred, ref, spacing, convention=convention)
    assert row["hd"] == pytest.approx(expected["hd"], rel=1e-12)
    assert row["assd"] == pytest.approx(expected["assd"], rel=1e-12)


def test_cli_default_is_the_isles_convention_and_medpy_is_selectable(tmp_path, capsys):
    pred_dir, ref_dir, _, _ = _folders(tmp_path)
    assert cli.main(["evaluate", "--pred", str(pred_dir), "--ref", str(ref_dir), "--out", str(tmp_path / "a")]) == 0
    assert "isles convention" in capsys.readouterr().out
    assert read_summary(tmp_path / "a" / "summary.json")["convention"] == "isles"
    argv = ["evaluate", "--pred", str(pred_dir), "--ref", str(ref_dir), "--out", str(tmp_path / "b"), "--convention", "medpy"]
    assert cli.main(argv) == 0
    isles_row = read_case_metrics(tmp_path / "a" / "metrics.csv")[0]
    medpy_row = read_case_metrics(tmp_path / "b" / "metrics.csv")[0]
    assert medpy_row["convention"] == "medpy"
    assert medpy_row["assd"] != pytest.approx(isles_row["assd"], rel=1e-3)  # the border case tells them apart
    assert medpy_row["hd95"] == isles_row["hd95"] and medpy_row["dice"] == isles_row["dice"]


def test_cli_refuses_an_unknown_convention(tmp_path, capsys):
    pred_dir, ref_dir, _, _ = _folders(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "--pred", str(pred_dir), "--ref", str(ref_dir), "--out", str(tmp_path / "c"),
                  "--convention", "itk"])
    assert exit_info.value.code == 2
    assert "--convention" in capsys.readouterr().err


def test_border_voxels_are_surface_for_medpy_only():
    # A lesion filling the lowest slice and the next: medpy's erosion counts the outside as
    # background, so its first slice is surface; the ISLES evaluator sees only voxels in the image.
    ref = np.zeros((9, 9, 5), bool)
    ref[2:7, 2:7, 0:2] = True
    pred = ref.copy()
    pred[2:7, 2:7, 2] = True  # one slice thicker
    spacing = (1.0, 1.0, 5.0)
    isles, medpy = case_metrics(pred, ref, spacing), case_metrics(pred, ref, spacing, "medpy")
    assert isles["hd"] == medpy["hd"] == 5.0
    # medpy: all 50 ref voxels are surface (slice 0 touches the outside); pred's surface is its 75
    # voxels minus the 9 enclosed ones of slice 1. pred→ref: the 25 top voxels are 5 mm away (125/66);
    # ref→pred: the 9 inner voxels of ref's slice 1 are inside pred, 1 mm (8) or 2 mm (1) from its
    # surface in plane (10/50).
    assert medpy["assd"] == pytest.approx(0.5 * (125 / 66 + 10 / 50), rel=1e-12)
    # ISLES: ref's contour points are its 16 rim voxels of slice 0 (its 9 inner ones have no background
    # face neighbour inside the image) and all 25 of slice 1; pred's are 16 + 16 + 25 = 57. Distances go
    # to the other mask's ball boundary: ref's slice-1 inner voxels lie 1 or 2 mm from pred's rim
    # (10/41); pred's top 25 lie 5 mm above ref's slice 1 (125/57).
    assert isles["assd"] == pytest.approx(0.5 * (10 / 41 + 125 / 57), rel=1e-12)
