"""The prepare stage: validation first, records that round-trip, patient-grouped folds, resume."""

import json
import os
import shutil

import numpy as np
import pytest

from islesbench import layouts
from islesbench.data_prep.prepare import prepare_cohort
from islesbench.errors import CohortError
from islesbench.imaging import preprocessing
from islesbench.storage import records


def test_records_round_trip_to_the_raw_case(tiny_cohort, tiny_prepared):
    entry = tiny_prepared.cases["case_1"]
    case = layouts.load_case(next(c for c in layouts.discover_cohort(tiny_cohort) if c.case_id == "case_1"),
                           modalities=tiny_prepared.modalities)
    vol = records.read_volume_record(tiny_prepared.paths.volume_file("case_1"))
    assert vol["image"].shape == (case.shape[2], 48, 48, len(tiny_prepared.modalities))
    # undo resampling and normalisation, compare with the clipped raw values
    image = preprocessing.from_grid(np.moveaxis(vol["image"], 0, 2), case.shape[:2])
    back = preprocessing.denormalize(image, tiny_prepared.modalities, entry["normalization"])
    direct = preprocessing.from_grid(preprocessing.to_grid(
        preprocessing.normalize(case.volumes, tiny_prepared.modalities, entry["normalization"]), 48), case.shape[:2])
    np.testing.assert_allclose(image, direct, atol=1e-5)
    for i, m in enumerate(tiny_prepared.modalities):
        p = entry["normalization"][m]
        clipped = np.clip(case.volumes[m], p["lo"], p["hi"])
        # resampling 64 -> 48 -> 64 blurs edges; the bulk of the values must come back
        assert np.median(np.abs(back[m] - clipped)) < 0.05 * (p["hi"] - p["lo"])
    # the mask on the grid is the raw mask resampled, and slice records hold the same data
    np.testing.assert_array_equal(vol["mask"], np.moveaxis(preprocessing.mask_to_grid(case.mask, 48), 2, 0))
    assert entry["lesion_volume_ml"] == pytest.approx(case.mask.sum() * np.prod(case.spacing) / 1000)


def test_slice_records_match_the_volume_record(tiny_prepared):
    import tensorflow as tf

    vol = records.read_volume_record(tiny_prepared.paths.volume_file("case_2"))
    slices = [records.parse_slice(r) for r in tf.data.TFRecordDataset(str(tiny_prepared.paths.slices_file("case_2")))]
    assert len(slices) == vol["image"].shape[0]
    for z, s in enumerate(slices):
        assert int(s["slice_index"]) == z
        np.testing.assert_array_equal(s["image"].numpy(), vol["image"][z])
        np.testing.assert_array_equal(s["mask"].numpy()[..., 0] > 0.5, vol["mask"][z])


def test_folds_never_split_a_patient_and_cover_every_training_case(tiny_cohort, tiny_prepared):
    truth = json.loads((tiny_cohort / "synthetic_cohort.json").read_text())
    patient = {c["case_id"]: c["patient"] for c in truth["cases"] if c["split"] == "TRAINING"}
    folds = tiny_prepared.splits()
    assert len(folds) == 2
    assert sorted(c for f in folds for c in f["val"]) == sorted(patient)
    for f in folds:
        assert {patient[c] for c in f["train"]}.isdisjoint({patient[c] for c in f["val"]})
    assert "case_9" not in {c for f in folds for c in f["val"]}  # the test case is not in any fold
    assert tiny_prepared.cases["case_9"]["split"] == "TESTING"


def test_inferred_patients_match_the_synthetic_truth(tiny_cohort, tiny_prepared):
    truth = json.loads((tiny_cohort / "synthetic_cohort.json").read_text())
    true_groups = {}
    for c in truth["cases"]:
        if c["split"] == "TRAINING":
            true_groups.setdefault(c["patient"], set()).add(c["case_id"])
    inferred = {}
    for case_id, p in json.loads(tiny_prepared.paths.patients.read_text())["patients"].items():
        inferred.setdefault(p, set()).add(case_id)
    assert sorted(map(sorted, inferred.values())) == sorted(map(sorted, true_groups.values()))


def test_rerun_skips_done_cases_and_resumes_an_interrupted_one(tiny_cohort, tiny_prepared, tmp_path, capsys):
    out = tmp_path / "prep"
    shutil.copytree(tiny_prepared.root, out)
    # an interrupted run: one case's entry never written, a half-written temporary left behind
    (out / "records" / "case_3.json").unlink()
    (out / "records" / ".case_3.tmp-999.slices.tfrecord").write_bytes(b"partial")
    before = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("case_1.*")}
    capsys.readouterr()
    prepared = prepare_cohort(tiny_cohort, out, folds=2, seed=0, grid=48)
    text = capsys.readouterr().out
    assert "preparing 1 case(s), 8 already done" in text and "[prepare 1/1] case_3" in text
    assert not list(out.rglob(".*.tmp-*"))
    assert {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("case_1.*")} == before
    assert prepared.manifest["cases"] == tiny_prepared.manifest["cases"]
    assert prepared.splits() == tiny_prepared.splits()


def test_changed_input_is_prepared_again(tiny_cohort, tiny_prepared, tmp_path, capsys):
    cohort = tmp_path / "cohort"
    shutil.copytree(tiny_cohort, cohort)
    out = tmp_path / "prep"
    prepare_cohort(cohort, out, folds=2, seed=0, grid=48)
    cbf = next(c for c in layouts.discover_cohort(cohort) if c.case_id == "case_4").files["CT_CBF"]
    st = os.stat(cbf)
    os.utime(cbf, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    capsys.readouterr()
    prepare_cohort(cohort, out, folds=2, seed=0, grid=48)
    assert "[prepare 1/1] case_4" in capsys.readouterr().out


def test_bad_cases_stop_before_anything_is_written(tiny_cohort, tmp_path):
    cohort = tmp_path / "cohort"
    shutil.copytree(tiny_cohort, cohort)
    cases = {c.case_id: c for c in layouts.discover_cohort(cohort)}
    shutil.rmtree(cases["case_2"].files["CT_Tmax"].parent)
    cases["case_5"].files["OT"].write_bytes(cases["case_5"].files["OT"].read_bytes()[:200])
    out = tmp_path / "prep"
    with pytest.raises(CohortError) as err:
        prepare_cohort(cohort, out, folds=2, seed=0, grid=48)
    message = str(err.value)
    assert "case_2" in message and "CT_Tmax" in message and "case_5" in message and "OT" in message
    assert not out.exists()
    prepared = prepare_cohort(cohort, out, folds=2, seed=0, grid=48, skip_bad=True)
    assert "case_2" not in prepared.cases and "case_5" not in prepared.cases and "case_1" in prepared.cases


def test_same_seed_gives_identical_records(tiny_cohort, tiny_prepared, tmp_path):
    out = tmp_path / "again"
    prepare_cohort(tiny_cohort, out, folds=2, seed=0, grid=48, jobs=2)
    for name in ("case_1.slices.tfrecord", "case_6.volume.tfrecord"):
        assert (out / "records" / name).read_bytes() == (tiny_prepared.paths.records_dir / name).read_bytes()
    assert json.loads((out / "splits.json").read_text()) == json.loads(tiny_prepared.paths.splits.read_text())


def _copy_prepared(tiny_prepared, tmp_path):
    out = tmp_path / "prep"
    shutil.copytree(tiny_prepared.root, out)
    return out


def _patient_csv(tmp_path, mapping):
    path = tmp_path / "patients.csv"
    path.write_text("case,patient\n" + "".join(f"{c},{p}\n" for c, p in mapping.items()))
    return path


def test_changed_seed_regenerates_the_split(tiny_cohort, tiny_prepared, tmp_path, capsys):
    out = _copy_prepared(tiny_prepared, tmp_path)
    capsys.readouterr()
    prepared = prepare_cohort(tiny_cohort, out, folds=2, seed=5, grid=48)
    assert "regenerating" in capsys.readouterr().out
    assert json.loads((out / "splits.json").read_text())["seed"] == 5
    fresh = prepare_cohort(tiny_cohort, tmp_path / "fresh", folds=2, seed=5, grid=48)
    assert prepared.splits() == fresh.splits()


def test_changed_patient_mapping_regenerates_a_split_that_would_leak(tiny_cohort, tiny_prepared, tmp_path):
    out = _copy_prepared(tiny_prepared, tmp_path)
    cases = sorted(json.loads((out / "patients.json").read_text())["patients"])
    # the old folds put case_1 and case_2 in different folds; now they are declared one patient
    folds = tiny_prepared.splits()
    a = next(c for c in folds[0]["val"])
    b = next(c for c in folds[1]["val"])
    mapping = {c: f"p_{c}" for c in cases}
    mapping[a] = mapping[b] = "p_shared"
    prepared = prepare_cohort(tiny_cohort, out, folds=2, seed=0, grid=48, patients_csv=_patient_csv(tmp_path, mapping))
    for fold in prepared.splits():
        assert (a in fold["val"]) == (b in fold["val"])


def test_a_split_that_puts_one_patient_on_both_sides_is_refused(tiny_cohort, tiny_prepared, tmp_path):
    from islesbench.errors import IslesbenchError
    from islesbench.storage.manifest import PreparedData

    out = _copy_prepared(tiny_prepared, tmp_path)
    patients = json.loads((out / "patients.json").read_text())["patients"]
    pair = next(p for p in set(patients.values()) if list(patients.values()).count(p) == 2)
    a, b = sorted(c for c, p in patients.items() if p == pair)
    split = json.loads((out / "splits.json").read_text())
    for fold in split["folds"]:  # a hand edit that moves b away from a
        fold["val"] = [c for c in fold["val"] if c != b]
        fold["train"] = [c for c in fold["train"] if c != b]
        if a in fold["val"]:
            fold["train"].append(b)
        else:
            fold["val"].append(b)
    (out / "splits.json").write_text(json.dumps(split))
    with pytest.raises(IslesbenchError, match=f"patient {pair}"):
        PreparedData(out).splits()
    with pytest.raises(IslesbenchError, match="splits.json"):
        prepare_cohort(tiny_cohort, out, folds=2, seed=0, grid=48)


def test_a_hand_edited_split_is_kept_while_it_fits_and_refused_when_the_seed_changes(tiny_cohort, tiny_prepared,
                                                                                    tmp_path, capsys):
    from islesbench.errors import IslesbenchError

    out = _copy_prepared(tiny_prepared, tmp_path)
    patients = json.loads((out / "patients.json").read_text())["patients"]
    split = json.loads((out / "splits.json").read_text())
    # move one single-slab patient from fold 0's validation to fold 1's
    single = next(c for c in split["folds"][0]["val"] if list(patients.values()).count(patients[c]) == 1)
    split["folds"][0]["val"].remove(single)
    split["folds"][0]["train"].append(single)
    split["folds"][1]["train"].remove(single)
    split["folds"][1]["val"].append(single)
    (out / "splits.json").write_text(json.dumps(split))
    capsys.readouterr()
    prepare_cohort(tiny_cohort, out, folds=2, seed=0, grid=48)
    assert "keeping existing" in capsys.readouterr().out
    assert json.loads((out / "splits.json").read_text())["folds"] == split["folds"]
    with pytest.raises(IslesbenchError, match="edited by hand.*seed 0, not 1"):
        prepare_cohort(tiny_cohort, out, folds=2, seed=1, grid=48)
