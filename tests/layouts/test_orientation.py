"""Orientation comes from the header: the same cases stored in three orientations give the same records,
the same metrics, and predictions in each input's own geometry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from islesbench import layouts
from islesbench.evaluation.metrics import case_metrics
from islesbench.imaging import preprocessing
from islesbench.inference import threshold_rule, volume
from islesbench.storage import records
from islesbench.storage.manifest import PreparedData, case_geometry

ORIENTATIONS = (("R", "A", "S"), ("L", "P", "S"), ("P", "S", "R"))
GRID, SLICE_MM = 32, 4.0


def _restore(array, affine, codes):
    from islesbench.data_prep.synth_isles24 import _reoriented

    return _reoriented(array, affine, codes)


@pytest.fixture(scope="module")
def stored_three_ways(tiny_isles24, tmp_path_factory):
    """{orientation: (raw root, PreparedData)}: every file of the cohort re-stored in that orientation."""
    import nibabel as nib

    out = {}
    for codes in ORIENTATIONS:
        name = "".join(codes)
        root = tmp_path_factory.mktemp("orient") / name
        for path in sorted(tiny_isles24.rglob("*.nii.gz")):
            img = nib.load(str(path))
            data = np.asarray(img.dataobj, dtype=np.float32)
            stored, affine = _restore(data, img.affine, codes)
            zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
            mask = "lesion-msk" in path.name
            layouts.save_nifti(root / path.relative_to(tiny_isles24), stored.astype(np.uint8) if mask else stored,
                               affine, spacing=zooms, dtype=np.uint8 if mask else np.float32)
        from islesbench.data_prep.prepare import prepare_cohort

        prepared = prepare_cohort(root, tmp_path_factory.mktemp("prep") / name, folds=2, seed=0, grid=GRID,
                                  slice_mm=SLICE_MM)
        out[codes] = (root, prepared)
    return out


def _to(codes_from, codes_to, array, affine):
    """An array stored along `codes_from` (with `affine`) re-stored along `codes_to`."""
    from nibabel import orientations

    t = orientations.ornt_transform(orientations.io_orientation(affine), orientations.axcodes2ornt(codes_to))
    return orientations.apply_orientation(array, t)


def test_manifest_records_each_cases_stored_orientation(stored_three_ways):
    for codes, (_, prepared) in stored_three_ways.items():
        assert prepared.layout == "isles24" and prepared.slice_mm == SLICE_MM
        assert prepared.manifest["manifest_version"] == 2
        for entry in prepared.cases.values():
            sampling = entry["sampling"]
            assert sampling["stored_axcodes"] == "".join(codes)
            assert sampling["shape"] == entry["shape"]
            assert sampling["depth"] == round(sampling["canonical_shape"][2] * sampling["canonical_spacing"][2] / SLICE_MM)


def test_records_are_the_same_whatever_the_stored_orientation(stored_three_ways):
    prepared = [p for _, p in stored_three_ways.values()]
    for case_id in prepared[0].cases:
        volumes = [records.read_volume_record(p.paths.volume_file(case_id)) for p in prepared]
        for other in volumes[1:]:
            np.testing.assert_allclose(other["image"], volumes[0]["image"], atol=1e-5)
            np.testing.assert_array_equal(other["mask"], volumes[0]["mask"])


def _reference(entry):
    return layouts.read_nifti(entry["source"]["OT"])[0] > 0


def test_grid_predictions_map_back_to_each_inputs_geometry_with_equal_metrics(stored_three_ways):
    results = {}
    for codes, (_, prepared) in stored_three_ways.items():
        for case_id in prepared.case_ids("TRAINING"):
            entry = prepared.cases[case_id]
            grid_map = records.read_volume_record(prepared.paths.volume_file(case_id))["mask"].astype(np.float32)
            prob = volume.grid_to_original(grid_map, case_geometry(entry))
            assert prob.shape == tuple(entry["shape"])
            pred = prob >= 0.5
            ref = _reference(entry)
            assert pred.shape == ref.shape
            row = case_metrics(pred, ref, tuple(entry["spacing"]))
            in_lps = _to(codes, ("L", "P", "S"), pred, np.asarray(entry["affine"]))
            results.setdefault(case_id, []).append((row, in_lps))
    for case_id, rows in results.items():
        first_row, first_pred = rows[0]
        assert first_row["dice"] > 0.5, case_id  # the resampled reference mapped back overlaps the original
        for row, pred in rows[1:]:
            np.testing.assert_array_equal(pred, first_pred)
            for key, value in first_row.items():
                if isinstance(value, float):
                    np.testing.assert_allclose(row[key], value, rtol=1e-6, atol=1e-9, err_msg=f"{case_id} {key}")


def test_threshold_baseline_uses_anatomical_left_right(stored_three_ways):
    outcomes = {}
    for codes, (_, prepared) in stored_three_ways.items():
        for case_id in prepared.case_ids("TRAINING"):
            entry = prepared.cases[case_id]
            volumes = {m: layouts.read_nifti(entry["source"][m])[0] for m in ("CT_CBF", "CT")}
            core = threshold_rule.core_mask(volumes, affine=entry["affine"])
            assert core.shape == tuple(entry["shape"])
            row = case_metrics(core, _reference(entry), tuple(entry["spacing"]))
            outcomes.setdefault(case_id, []).append((row["dice"], _to(codes, ("L", "P", "S"), core, np.asarray(entry["affine"]))))
    for case_id, rows in outcomes.items():
        for dice, core in rows[1:]:
            assert dice == pytest.approx(rows[0][0], abs=1e-9)
            np.testing.assert_array_equal(core, rows[0][1])


def test_predict_writes_back_in_each_inputs_geometry(stored_three_ways, tmp_path):
    from islesbench.inference.predictor import probability_in_stored_geometry

    class RuleModel:
        """Stands in for a trained model: the rCBF rule on the canonical volumes predict hands it."""

        grid, config, modalities = GRID, {"slice_mm": SLICE_MM}, ("CT_CBF", "CT")

        def probability(self, volumes):
            assert set(volumes) == {"CT_CBF", "CT"}
            return threshold_rule.core_mask(volumes).astype(np.float32)

    written = {}
    for codes, (root, _) in stored_three_ways.items():
        case_files = layouts.discover_cohort(root)[0]
        case = layouts.load_case(case_files, modalities=RuleModel.modalities, with_mask=False)
        prob = probability_in_stored_geometry(RuleModel(), case)
        assert prob.shape == case.shape
        target = tmp_path / "".join(codes) / layouts.prediction_name(case.case_id)
        layouts.write_prediction(target, prob >= 0.5, case.affine, case.spacing)
        data, affine, _ = layouts.read_nifti(target)
        np.testing.assert_allclose(affine, case.affine, atol=1e-5)
        written[codes] = _to(codes, ("L", "P", "S"), data > 0, affine)
    maps = list(written.values())
    assert maps[0].any()
    for other in maps[1:]:
        np.testing.assert_array_equal(other, maps[0])


def test_oblique_volume_is_refused_with_one_named_line_and_a_small_tilt_is_handled(tiny_isles24, tmp_path):
    import nibabel as nib

    def tilted(degrees):
        root = tmp_path / f"tilt{degrees}"
        c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
        rotation = np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]])
        for path in sorted(tiny_isles24.rglob("*.nii.gz")):
            if "synth0001" not in path.name:
                continue
            img = nib.load(str(path))
            data = np.asarray(img.dataobj, dtype=np.float32)
            layouts.save_nifti(root / path.relative_to(tiny_isles24), data, rotation @ img.affine,
                               spacing=img.header.get_zooms()[:3])
        return layouts.discover_cohort(root)[0]

    case = tilted(45)
    faults = layouts.validate_case(case)
    assert len(faults) == 1 and "oblique orientation" in faults[0] and case.case_id in faults[0]
    assert ".nii.gz" in faults[0]
    assert layouts.validate_case(tilted(10)) == []
    entry = json.dumps(preprocessing.plan_sampling((4, 5, 6), np.diag([1, 1, 1, 1.0]), (1, 1, 1), 8).to_json())
    assert json.loads(entry)["stored_axcodes"] == "RAS"


def test_predict_feeds_the_model_what_prepare_recorded(stored_three_ways):
    """predict's path (canonical volumes at the target slice count -> inference's own normalisation and
    in-plane grid) gives the records' image: the same brain medians, the same interpolation."""
    for codes, (root, prepared) in stored_three_ways.items():
        case_files = layouts.discover_cohort(root)[0]
        entry = prepared.cases[case_files.case_id]
        case = layouts.load_case(case_files, modalities=tuple(prepared.modalities), with_mask=False)
        sampling = preprocessing.plan_sampling(case.shape, case.affine, case.spacing, GRID, SLICE_MM)
        canonical = {m: preprocessing.to_canonical_volume(v, sampling) for m, v in case.volumes.items()}
        params = preprocessing.normalization_params(canonical, prepared.modalities)
        image, _ = preprocessing.case_to_records_arrays(canonical, None, prepared.modalities, params, GRID)
        recorded = records.read_volume_record(prepared.paths.volume_file(case_files.case_id))["image"]
        for m in prepared.modalities:
            assert params[m]["scale"] == pytest.approx(entry["normalization"][m]["scale"], rel=1e-6)
        np.testing.assert_allclose(image, recorded, atol=1e-5)
