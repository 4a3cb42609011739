"""islesbench.storage.pretrain_records: a pretraining record counts only when tied to its weights by hash, and
what it read is matched to the fine-tuning cohort by content, not by path. No training: the weights are bytes
and the records are what `islesbench pretrain` writes (its own select_cases), so these checks stay fast."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from islesbench.errors import IslesbenchError
from islesbench.selfsup.pretrain import PretrainConfig, select_cases
from islesbench.storage import manifest, pretrain_records, selection


def fake_pretraining(out, sources, fold, folds_of, weights: bytes = b"weights") -> None:
    """OUT/fold_<fold>.keras and its record as `islesbench pretrain --exclude-fold fold` writes them."""
    paths = pretrain_records.PretrainPaths(out)
    cohorts, excluded = select_cases(sources, fold, folds_of)
    paths.output(fold).parent.mkdir(parents=True, exist_ok=True)
    paths.output(fold).write_bytes(weights + bytes([fold]))
    record = {"method": pretrain_records.METHOD, "config": dataclasses.asdict(PretrainConfig(encoder_width=0.125)),
              "cohorts": cohorts, "excluded": excluded, "output": paths.output(fold).name,
              "case_fingerprints": [p.case_fingerprints(c["cases"]) for (_, p), c in zip(sources, cohorts)],
              "weights_sha256": pretrain_records.weights_sha256(paths.output(fold))}
    paths.record(fold).parent.mkdir(parents=True, exist_ok=True)
    paths.record(fold).write_text(json.dumps(record))


@pytest.fixture(scope="module")
def copied_cohort(tiny_prepared, tmp_path_factory):
    """The fine-tuning cohort under another path, as a copy of its raw folder prepared there gives it."""
    root = tmp_path_factory.mktemp("copy") / "prepared"
    shutil.copytree(tiny_prepared.root, root)
    data = json.loads((root / "manifest.json").read_text())
    data["source"] = str(root.parent / "raw-copy")
    (root / "manifest.json").write_text(json.dumps(data))
    return manifest.PreparedData(root)


@pytest.fixture(scope="module")
def per_fold(tiny_prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("ssl") / "ssl"
    for k in (0, 1):
        fake_pretraining(out, [(str(tiny_prepared.root), tiny_prepared)], k, tiny_prepared)
    return out


def _check(encoder, prepared, folds=(0, 1)):
    encoder.check_folds(list(folds), prepared.splits(), prepared, 0.125)
    return encoder.provenance(list(folds), prepared.splits(), prepared)


def test_a_tied_per_fold_folder_is_clean(per_fold, tiny_prepared):
    provenance = _check(pretrain_records.read_pretrained(str(per_fold)), tiny_prepared)
    assert [e["leak"] for e in provenance["folds"].values()] == ["none", "none"]
    assert selection.pretraining_flag(provenance) is None


def test_a_folder_without_its_records_is_refused(per_fold, tiny_prepared, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for k in (0, 1):
        shutil.copy(per_fold / f"fold_{k}.keras", bare / f"fold_{k}.keras")
    with pytest.raises(IslesbenchError, match="what its pretraining read is unknown: no pretrain.json describes it"):
        _check(pretrain_records.read_pretrained(str(bare)), tiny_prepared)


def test_a_record_of_other_weights_is_not_taken(per_fold, tiny_prepared, tmp_path):
    swapped = tmp_path / "swapped"
    shutil.copytree(per_fold, swapped)
    shutil.copy(per_fold / "fold_0.keras", swapped / "fold_1.keras")  # fold 0's encoder saw fold 1's val cases
    encoder = pretrain_records.read_pretrained(str(swapped))
    assert encoder.records[1] is not None and encoder.records[1]["output"] == "fold_0.keras"  # found by its hash
    with pytest.raises(IslesbenchError, match="read .* of fold 1's validation cases"):
        _check(encoder, tiny_prepared, folds=(1,))
    (swapped / "fold_0" / "pretrain.json").unlink()  # now no record has fold_1.keras's hash
    with pytest.raises(IslesbenchError, match="its sha256 differs from the one its pretrain.json records"):
        _check(pretrain_records.read_pretrained(str(swapped)), tiny_prepared, folds=(1,))


def test_a_renamed_single_file_is_found_by_hash_beside_its_records_and_flagged_unknown_elsewhere(
        per_fold, tiny_prepared, tmp_path):
    beside = per_fold / "encoder.keras"
    shutil.copy(per_fold / "fold_0.keras", beside)
    try:
        encoder = pretrain_records.read_pretrained(str(beside))
        provenance = _check(encoder, tiny_prepared)
        assert provenance["folds"]["0"]["leak"] == "none" and provenance["folds"]["1"]["leak"] == "saw validation cases"
        assert "encoder pretrained on" in selection.pretraining_flag(provenance)
    finally:
        beside.unlink()
    elsewhere = tmp_path / "mine.keras"
    shutil.copy(per_fold / "fold_0.keras", elsewhere)
    provenance = _check(pretrain_records.read_pretrained(str(elsewhere)), tiny_prepared)  # allowed, but:
    assert {e["leak"] for e in provenance["folds"].values()} == {"unknown"}
    assert all(e["saw_validation_cases"] is None for e in provenance["folds"].values())
    assert selection.pretraining_flag(provenance) == selection.UNKNOWN_PRETRAINING


def test_the_fine_tuning_cohort_under_another_path_is_recognised(tiny_prepared, copied_cohort, tmp_path):
    assert pretrain_records.cohort_key(copied_cohort) != pretrain_records.cohort_key(tiny_prepared)
    # pretraining on the copy as if unlabelled leaves out fold 0's validation cases all the same
    cohorts, _ = select_cases([(str(copied_cohort.root), copied_cohort)], 0, tiny_prepared)
    assert sorted(cohorts[0]["excluded_cases"]) == sorted(tiny_prepared.splits()[0]["val"])
    # and a record that did read them under the copy's path is caught by content
    out = tmp_path / "ssl"
    fake_pretraining(out, [(str(copied_cohort.root), copied_cohort)], 0, copied_cohort)  # left out fold 0, read fold 1
    (out / "fold_0").rename(out / "fold_1")
    (out / "fold_0.keras").rename(out / "fold_1.keras")  # its record, tied by name and hash, now names fold 1's file
    record = json.loads((out / "fold_1" / "pretrain.json").read_text())
    assert set(tiny_prepared.splits()[1]["val"]) <= set(record["cohorts"][0]["cases"])
    with pytest.raises(IslesbenchError, match="read .* of fold 1's validation cases"):
        _check(pretrain_records.read_pretrained(str(out)), tiny_prepared, folds=(1,))


def test_case_content_fingerprints_ignore_paths_and_tell_cases_apart(tiny_prepared, copied_cohort):
    ours, copy = tiny_prepared.case_fingerprints(), copied_cohort.case_fingerprints()
    assert ours == copy and len(set(ours.values())) == len(ours)
    assert tiny_prepared.data_fingerprint() == copied_cohort.data_fingerprint()
