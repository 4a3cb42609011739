"""The TFRecord schema: round trip, and records of another version rejected with a clear message."""

import os

import numpy as np
import pytest

from islesbench.errors import IslesbenchError
from islesbench.storage import records


def test_slice_round_trip(tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    image = rng.normal(size=(16, 12, 3)).astype(np.float32)
    mask = (rng.random((16, 12)) > 0.7).astype(np.uint8)
    path = tmp_path / "c.slices.tfrecord"
    records.write_records(path, [records.slice_example("case_7", 4, 9, image, mask, (0.9, 0.8, 5.0))])
    parsed = [records.parse_slice(r) for r in tf.data.TFRecordDataset(str(path))]
    assert len(parsed) == 1
    p = parsed[0]
    np.testing.assert_array_equal(p["image"].numpy(), image)
    np.testing.assert_array_equal(p["mask"].numpy()[..., 0], mask)
    assert p["case_id"].numpy() == b"case_7" and int(p["slice_index"]) == 4 and int(p["has_lesion"]) == 1
    np.testing.assert_allclose(p["spacing"].numpy(), (0.9, 0.8, 5.0), rtol=1e-6)
    assert not list(tmp_path.glob(".*tmp*"))


def test_volume_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.normal(size=(3, 8, 8, 2)).astype(np.float32)
    mask = np.zeros((3, 8, 8), np.uint8)
    path = tmp_path / "c.volume.tfrecord"
    records.write_records(path, [records.volume_example("case_2", image, mask, (1.0, 1.0, 4.0))])
    v = records.read_volume_record(path)
    np.testing.assert_array_equal(v["image"], image)
    assert v["mask"].shape == (3, 8, 8) and not v["mask"].any() and v["case_id"] == "case_2"


def test_other_schema_version_rejected(tmp_path, monkeypatch):
    path = tmp_path / "old.slices.tfrecord"
    monkeypatch.setattr(records, "SCHEMA_VERSION", 0)
    records.write_records(path, [records.slice_example("case_1", 0, 1, np.zeros((4, 4, 1), np.float32),
                                                       np.zeros((4, 4), np.uint8), (1, 1, 1))])
    monkeypatch.undo()
    with pytest.raises(IslesbenchError, match=r"old\.slices\.tfrecord.*schema version 0.*version 1"):
        records.check_record_files([path])


def test_missing_and_garbage_files_named(tmp_path):
    with pytest.raises(IslesbenchError, match="missing"):
        records.check_record_files([tmp_path / "nope.tfrecord"])
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(b"not a tfrecord at all, just bytes")
    with pytest.raises(IslesbenchError, match="bad.tfrecord"):
        records.check_record_files([bad])


def test_checked_file_read_once_until_it_changes(tmp_path, monkeypatch):
    path = tmp_path / "c.slices.tfrecord"
    example = records.slice_example("case_1", 0, 1, np.zeros((4, 4, 1), np.float32), np.zeros((4, 4), np.uint8),
                                    (1, 1, 1))
    records.write_records(path, [example])
    reads = []
    first_record = records._checked_first_record
    monkeypatch.setattr(records, "_checked_first_record", lambda p: reads.append(p) or first_record(p))
    records.check_record_files([path])
    records.check_record_files([path])  # a grid checks the same files fold after fold
    assert len(reads) == 1
    raw = path.read_bytes()
    path.write_bytes(raw[:-3] + b"xyz")  # damaged after the first check: read again, and named
    os.utime(path, ns=(1, 1))
    with pytest.raises(IslesbenchError, match=r"c\.slices\.tfrecord"):
        records.check_record_files([path])
    assert len(reads) == 2
