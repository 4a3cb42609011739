"""nnU-Net v2's names (documentation/dataset_format.md, manual_data_splits.md): dataset folders, channel
files, dataset.json and splits_final.json, as islesbench.storage.nnunet_dataset writes them."""

from __future__ import annotations

import pytest

from islesbench.errors import IslesbenchError
from islesbench.storage import nnunet_dataset


def test_names_follow_nnunets_rules(tmp_path):
    assert nnunet_dataset.dataset_folder_name(7, "ISLES_ctp-2018") == "Dataset007_ISLES_ctp-2018"
    dataset = nnunet_dataset.RawDataset(tmp_path / "Dataset007_X")
    assert dataset.image_path("case_12", 3).name == "case_12_0003.nii.gz"
    assert dataset.image_path("sub-stroke0001", 0, training=False).parent.name == "imagesTs"
    assert dataset.label_path("case_12").name == "case_12.nii.gz"
    assert nnunet_dataset.preprocessed_splits_path(tmp_path, "Dataset007_X") == tmp_path / "Dataset007_X" / "splits_final.json"


@pytest.mark.parametrize("dataset_id, name, message", [(0, "X", "--dataset-id"), (1000, "X", "--dataset-id"),
                                                       (True, "X", "--dataset-id"), (5, "a/b", "--name"),
                                                       (5, "", "--name"), (5, "_x", "--name")])
def test_unusable_dataset_ids_and_names_are_refused(dataset_id, name, message):
    with pytest.raises(IslesbenchError, match=message):
        nnunet_dataset.dataset_folder_name(dataset_id, name)


def test_dataset_json_and_splits_hold_what_nnunet_reads():
    info = nnunet_dataset.dataset_json(["CT_CBF", "CT"], 4, extra={"islesbench": {"cohort": "c"}})
    assert info["channel_names"] == {"0": "CT_CBF", "1": "CT"}  # "CT" selects nnU-Net's CT normalisation
    assert info["labels"] == {"background": 0, "lesion": 1} and info["numTraining"] == 4
    assert info["file_ending"] == ".nii.gz" and info["islesbench"] == {"cohort": "c"}
    folds = [{"train": ["a"], "val": ["b"], "note": 1}, {"train": ["b"], "val": ["a"]}]
    assert nnunet_dataset.splits_final(folds) == [{"train": ["a"], "val": ["b"]}, {"train": ["b"], "val": ["a"]}]


def test_cases_on_disk_ignore_temporaries_and_json_is_written_only_when_changed(tmp_path):
    dataset = nnunet_dataset.RawDataset(tmp_path)
    dataset.images_tr.mkdir()
    for name in ("case_1_0000.nii.gz", "case_1_0001.nii.gz", ".case_2_0000.tmp-9.nii.gz", "notes.txt"):
        (dataset.images_tr / name).write_bytes(b"")
    assert nnunet_dataset.RawDataset(tmp_path).cases_on_disk() == {"imagesTr": {"case_1"}, "labelsTr": set(),
                                                                   "imagesTs": set()}
    assert nnunet_dataset.write_json_if_changed(dataset.dataset_json, {"a": 1})
    assert not nnunet_dataset.write_json_if_changed(dataset.dataset_json, {"a": 1})
    assert nnunet_dataset.write_json_if_changed(dataset.dataset_json, {"a": 2})
