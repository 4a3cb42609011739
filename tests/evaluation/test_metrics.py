"""islesbench.evaluation (metrics, aggregate, files): hand-computed cases, both HD/ASSD conventions, empty masks, medpy equality,
aggregates and files. The ISLES convention's oracle (SimpleITK + VTK) is in test_metrics_isles_oracle.py."""

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from islesbench.errors import IslesbenchError
from islesbench.evaluation.aggregate import format_summary_table, summarize
from islesbench.evaluation.files import read_case_metrics, read_summary, write_case_metrics
from islesbench.evaluation.metrics import case_metrics
from islesbench.evaluation.names import CONVENTIONS, DISTANCE_METRICS, METRIC_NAMES


def cube(shape, lo, size):
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(l, l + size) for l in lo)] = True
    return mask


def brute_force_directed(a, b, spacing):
    """Independent oracle: surface = voxels with a 26-neighbour outside (or off the volume); all pairs."""
    def surf(m):
        padded = np.pad(m, 1)
        out = np.zeros_like(m)
        for offset in np.ndindex(3, 3, 3):
            shifted = padded[tuple(slice(o, o + n) for o, n in zip(offset, m.shape))]
            out |= m & ~shifted
        return out

    pa = np.argwhere(surf(a)) * np.asarray(spacing)
    pb = np.argwhere(surf(b)) * np.asarray(spacing)
    return cdist(pa, pb).min(axis=1)


def random_blobs(rng, shape, level=0.53, sigma=1.5):
    return ndimage.gaussian_filter(rng.random(shape), sigma) > level


def test_keys_in_order_and_the_convention_recorded():
    a = cube((8, 8, 8), (2, 2, 2), 3)
    m = case_metrics(a, a, (1, 1, 1))
    assert tuple(m) == (*METRIC_NAMES, "convention")
    assert m["convention"] == "isles"  # the challenge's own numbers by default
    assert case_metrics(a, a, (1, 1, 1), convention="medpy")["convention"] == "medpy"
    assert set(DISTANCE_METRICS) <= set(METRIC_NAMES)


def test_unknown_convention_is_refused():
    a = cube((8, 8, 8), (2, 2, 2), 3)
    with pytest.raises(IslesbenchError, match="isles, medpy"):
        case_metrics(a, a, (1, 1, 1), convention="itk")


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_identical_masks(convention):
    a = cube((8, 8, 8), (2, 2, 2), 3)
    m = case_metrics(a, a, (1.0, 1.0, 2.0), convention=convention)
    assert m["dice"] == m["precision"] == m["recall"] == 1.0
    assert m["nsd_1mm"] == m["nsd_2mm"] == 1.0
    assert all(m[k] == 0.0 for k in DISTANCE_METRICS)
    assert m["avd_ml"] == m["avd_rel"] == 0.0
    assert m["ref_volume_ml"] == pytest.approx(27 * 2.0 / 1000)
    assert (m["lesion_tp"], m["lesion_fp"], m["lesion_fn"], m["lesion_f1"]) == (1, 0, 0, 1.0)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_cube_against_shifted_cube_isotropic(convention):
    # 4-voxel cubes, shifted by one voxel along x. Surface = 56 voxels (64 minus the 2^3 core).
    # Prediction surface at distance 1: its far face (16) and its core-facing x=3 face interior (4).
    # On a box away from the border both conventions see the same 56 voxels: ISLES's ball boundary,
    # 26-contour and face-contour points all equal medpy's surface here.
    ref = cube((10, 10, 10), (2, 2, 2), 4)
    pred = cube((10, 10, 10), (3, 2, 2), 4)
    m = case_metrics(pred, ref, (1.0, 1.0, 1.0), convention=convention)
    assert m["dice"] == 0.75  # 2*48 / 128
    assert m["precision"] == m["recall"] == 0.75
    assert m["hd"] == 1.0
    assert m["hd95"] == 1.0  # 40 of the 112 pooled distances are 1
    assert m["assd"] == pytest.approx(20 / 56, rel=1e-15)
    assert m["assd_pooled"] == pytest.approx(20 / 56, rel=1e-15)
    assert m["avd_ml"] == 0.0


def test_cube_against_shifted_cube_anisotropic():
    # Spacing (2, 0.5, 3): the far face is 2 mm away; the 4 core-facing voxels are 0.5 mm from the
    # reference surface along y. Directed mean = (16*2 + 4*0.5) / 56 in both directions.
    spacing = (2.0, 0.5, 3.0)
    ref = cube((10, 10, 10), (2, 2, 2), 4)
    pred = cube((10, 10, 10), (3, 2, 2), 4)
    m = case_metrics(pred, ref, spacing, convention="medpy")
    assert m["hd"] == 2.0
    assert m["assd"] == pytest.approx(34 / 56, rel=1e-15)
    assert m["assd_pooled"] == pytest.approx(34 / 56, rel=1e-15)
    assert m["ref_volume_ml"] == m["pred_volume_ml"] == pytest.approx(64 * 3.0 / 1000)


def test_assd_conventions_differ_when_surfaces_differ_in_size():
    # A 2^3 cube inside a 6^3 cube: 8 prediction surface voxels, 152 reference surface voxels.
    ref = cube((10, 10, 10), (1, 1, 1), 6)
    pred = cube((10, 10, 10), (3, 3, 3), 2)
    spacing = (1.0, 1.5, 2.0)
    m = case_metrics(pred, ref, spacing, convention="medpy")
    d_pr = brute_force_directed(pred, ref, spacing)
    d_rp = brute_force_directed(ref, pred, spacing)
    assert d_pr.size == 8 and d_rp.size == 152
    assert m["assd"] == pytest.approx((d_pr.mean() + d_rp.mean()) / 2, rel=1e-12)
    assert m["assd_pooled"] == pytest.approx(np.concatenate([d_pr, d_rp]).mean(), rel=1e-12)
    assert m["assd"] != pytest.approx(m["assd_pooled"])
    assert m["hd"] == pytest.approx(max(d_pr.max(), d_rp.max()), rel=1e-12)
    assert m["dice"] == pytest.approx(2 * 8 / (8 + 216))
    assert m["precision"] == 1.0 and m["recall"] == pytest.approx(8 / 216)
    assert m["avd_rel"] == pytest.approx(208 / 216)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_oracle(seed):
    rng = np.random.default_rng(seed)
    spacing = (0.8, 1.3, 4.0)
    pred, ref = random_blobs(rng, (14, 12, 6)), random_blobs(rng, (14, 12, 6))
    assert pred.any() and ref.any()
    m = case_metrics(pred, ref, spacing, convention="medpy")
    d_pr, d_rp = brute_force_directed(pred, ref, spacing), brute_force_directed(ref, pred, spacing)
    both = np.concatenate([d_pr, d_rp])
    assert m["hd"] == pytest.approx(both.max(), rel=1e-12)
    assert m["hd95"] == pytest.approx(np.percentile(both, 95), rel=1e-12)
    assert m["assd"] == pytest.approx((d_pr.mean() + d_rp.mean()) / 2, rel=1e-12)
    assert m["assd_pooled"] == pytest.approx(both.mean(), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_equal_to_medpy_on_random_nonempty_volumes(seed):
    binary = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(seed)
    shape = (40, 36, 10)
    spacing = (0.9, 1.1, 5.0)
    pred, ref = random_blobs(rng, shape), random_blobs(rng, shape)
    if seed == 3:  # lesions touching the volume border: the crop must keep medpy's border surfaces
        pred[:, :, 0] |= ref[:, :, 1]
        ref[0, :, :] = True
    m = case_metrics(pred, ref, spacing, convention="medpy")
    isles = case_metrics(pred, ref, spacing)
    assert (isles["hd95"], isles["assd_pooled"]) == (m["hd95"], m["assd_pooled"])  # medpy's in both
    # medpy with the same full 3x3x3 neighbourhood (its default, connectivity=1, is 6-connected)
    assert m["hd"] == binary.hd(pred, ref, spacing, 3)
    assert m["hd95"] == binary.hd95(pred, ref, spacing, 3)
    assert m["assd_pooled"] == binary.assd(pred, ref, spacing, 3)
    expected_assd = (binary.asd(pred, ref, spacing, 3) + binary.asd(ref, pred, spacing, 3)) / 2
    assert m["assd"] == pytest.approx(expected_assd, rel=1e-14)
    assert m["dice"] == binary.dc(pred, ref)
    assert m["precision"] == binary.precision(pred, ref)
    assert m["recall"] == binary.recall(pred, ref)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_both_empty(convention):
    z = np.zeros((6, 6, 3), dtype=bool)
    m = case_metrics(z, z, (1.0, 1.0, 5.0), convention=convention)
    assert m["dice"] == m["precision"] == m["recall"] == m["lesion_f1"] == m["lesion_f1_iou50"] == 1.0
    assert m["nsd_1mm"] == m["nsd_2mm"] == 1.0 and m["lesion_count_diff"] == 0
    assert all(m[k] == 0.0 for k in DISTANCE_METRICS)
    assert m["avd_ml"] == m["avd_rel"] == m["ref_volume_ml"] == m["pred_volume_ml"] == 0.0
    assert (m["lesion_tp"], m["lesion_fp"], m["lesion_fn"]) == (0, 0, 0)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_empty_prediction(convention):
    ref = cube((6, 6, 3), (1, 1, 0), 2)
    m = case_metrics(np.zeros_like(ref), ref, (1.0, 1.0, 5.0), convention=convention)
    assert m["dice"] == m["precision"] == m["recall"] == m["lesion_f1"] == m["lesion_f1_iou50"] == 0.0
    assert m["nsd_1mm"] == m["nsd_2mm"] == 0.0 and m["lesion_count_diff"] == 1
    assert all(math.isinf(m[k]) and m[k] > 0 for k in DISTANCE_METRICS)
    assert m["avd_ml"] == pytest.approx(8 * 5 / 1000) and m["avd_rel"] == 1.0
    assert (m["lesion_tp"], m["lesion_fp"], m["lesion_fn"]) == (0, 0, 1)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_empty_reference(convention):
    pred = cube((6, 6, 3), (1, 1, 0), 2)
    m = case_metrics(pred, np.zeros_like(pred), (1.0, 1.0, 5.0), convention=convention)
    assert m["dice"] == m["precision"] == m["recall"] == m["lesion_f1"] == 0.0
    assert all(math.isinf(m[k]) for k in DISTANCE_METRICS)
    assert math.isinf(m["avd_rel"]) and m["ref_volume_ml"] == 0.0
    assert (m["lesion_tp"], m["lesion_fp"], m["lesion_fn"]) == (0, 1, 0)


def test_lesion_wise_counts_with_26_connectivity():
    shape = (20, 20, 5)
    ref = np.zeros(shape, dtype=bool)
    ref[1:4, 1:4, 1:3] = True  # lesion A: detected
    ref[10:12, 10:12, 1:3] = True  # lesion B: detected
    ref[16, 16, 2] = True  # lesion C: one voxel, missed
    ref[17, 17, 3] = True  # diagonal neighbour of C: same 26-connected lesion
    pred = np.zeros(shape, dtype=bool)
    pred[2:5, 2:5, 1:2] = True  # overlaps A
    pred[11, 11, 2] = True  # overlaps B
    pred[12, 12, 3] = True  # diagonal neighbour of the voxel above, outside B: same component
    pred[1, 18, 1] = True  # false positive
    m = case_metrics(pred, ref, (1.0, 1.0, 1.0))
    assert (m["lesion_tp"], m["lesion_fp"], m["lesion_fn"]) == (2, 1, 1)
    assert m["lesion_f1"] == pytest.approx(4 / 6)
    assert m["lesion_count_diff"] == 0  # 3 reference lesions, 3 predicted components
    # IoU >= 0.5: A (18 voxels) and its 9-voxel overlap (IoU 6/21) and B (8) with 1 voxel do not match
    assert m["lesion_f1_iou50"] == 0.0


def test_shape_mismatch_raises():
    from islesbench.errors import IslesbenchError

    with pytest.raises(IslesbenchError, match="shape"):
        case_metrics(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), (1, 1, 1))


def _rows():
    return [
        {"case": "case_1", **case_metrics(cube((8, 8, 4), (1, 1, 1), 3), cube((8, 8, 4), (2, 1, 1), 3), (0.9, 0.9, 5.0))},
        {"case": "case_2", **case_metrics(np.zeros((8, 8, 4)), cube((8, 8, 4), (1, 1, 1), 2), (0.9, 0.9, 5.0))},
        {"case": "case_3", **case_metrics(np.zeros((8, 8, 4)), np.zeros((8, 8, 4)), (0.9, 0.9, 5.0))},
    ]


def test_summarize_with_infinities():
    rows = _rows()
    s = summarize(rows)
    assert s["n_cases"] == 3
    hd = s["metrics"]["hd"]
    assert hd["n"] == 3 and hd["n_infinite"] == 1 and hd["n_finite"] == 2
    assert math.isinf(hd["mean"]) and math.isinf(hd["std"])
    assert hd["mean_finite"] == pytest.approx((rows[0]["hd"] + 0.0) / 2)
    assert hd["std_finite"] == pytest.approx(np.std([rows[0]["hd"], 0.0]))
    assert hd["median"] == rows[0]["hd"]
    dice = s["metrics"]["dice"]
    assert dice["n_infinite"] == 0
    assert dice["mean"] == pytest.approx(np.mean([r["dice"] for r in rows]))
    assert dice["std"] == pytest.approx(np.std([r["dice"] for r in rows]))
    assert dice["mean"] == dice["mean_finite"]
    for stats in s["metrics"].values():
        assert not any(isinstance(v, float) and math.isnan(v) for v in stats.values())


def test_summarize_all_infinite_has_no_finite_mean():
    s = summarize([{"hd": math.inf}, {"hd": math.inf}])
    hd = s["metrics"]["hd"]
    assert hd["n_finite"] == 0 and hd["mean_finite"] is None and math.isinf(hd["mean"])
    assert "hd" in format_summary_table(s)


def test_csv_and_summary_round_trip(tmp_path):
    rows = _rows()
    written = write_case_metrics(rows, tmp_path / "metrics.csv", tmp_path / "summary.json", extra_summary={"run": "x"})
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == ",".join(["case", *METRIC_NAMES, "convention"])
    assert "inf" in (tmp_path / "metrics.csv").read_text()
    back = read_case_metrics(tmp_path / "metrics.csv")
    assert back == rows  # floats at full precision, inf parsed back, counts as ints
    assert isinstance(back[0]["lesion_tp"], int)
    text = (tmp_path / "summary.json").read_text()
    assert "Infinity" not in text and "NaN" not in text  # strict JSON
    summary = read_summary(tmp_path / "summary.json")
    assert summary["run"] == "x" and summary["cases"] == ["case_1", "case_2", "case_3"]
    assert summary["convention"] == "isles" and "ITK/VTK" in summary["convention_label"]
    assert math.isinf(summary["metrics"]["hd"]["mean"])
    assert summary["metrics"] == written["metrics"]
    assert list(tmp_path.iterdir()) and not list(tmp_path.glob(".*tmp*"))


def test_format_summary_table_lists_every_metric_and_the_convention():
    table = format_summary_table(summarize(_rows()))
    assert table.splitlines()[0].startswith("hd, assd: isles convention")
    for name in METRIC_NAMES:
        assert name in table


def test_rows_of_two_conventions_are_refused_before_anything_is_written(tmp_path):
    a, b = cube((8, 8, 4), (1, 1, 1), 3), cube((8, 8, 4), (2, 1, 1), 3)
    rows = [{"case": "1", **case_metrics(a, b, (1, 1, 5))}, {"case": "2", **case_metrics(a, b, (1, 1, 5), "medpy")}]
    with pytest.raises(IslesbenchError, match="mix"):
        write_case_metrics(rows, tmp_path / "metrics.csv", tmp_path / "summary.json")
    assert not list(tmp_path.iterdir())


def test_rows_without_a_convention_are_medpy_rows():
    # metrics.csv files written before the conventions existed hold medpy's hd and assd
    assert summarize([{"case": "1", "hd": 2.0}])["convention"] == "medpy"
