"""The TFRecord schema: writer and parser side by side, one schema version in every record.

Two record kinds, one shard file each per case (so a fold is a list of files):

* slice records (`<case>.slices.tfrecord`), one `tf.train.Example` per axial slice, for 2-D models;
* a volume record (`<case>.volume.tfrecord`), one Example holding the whole slab, for 3-D models.

Images are the normalised input channels on the prepared in-plane grid (see islesbench.imaging.preprocessing),
stored as raw little-endian float32 bytes in (H, W, C) / (D, H, W, C) order; masks as uint8 0/1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from islesbench.atomic import atomic_path
from islesbench.errors import IslesbenchError

# TensorFlow and protobuf imported inside functions only, so that `islesbench --help` and start-up stay fast.

SCHEMA_VERSION = 1
SLICES_SUFFIX = ".slices.tfrecord"
VOLUME_SUFFIX = ".volume.tfrecord"

# Feature names live here and nowhere else.
F_VERSION = "schema_version"
F_CASE = "case_id"
F_SLICE = "slice_index"
F_NUM_SLICES = "num_slices"
F_HEIGHT, F_WIDTH, F_DEPTH, F_CHANNELS = "height", "width", "depth", "channels"
F_IMAGE = "image"
F_MASK = "mask"
F_SPACING = "spacing"
F_HAS_LESION = "has_lesion"


def _int(values):
    import tensorflow as tf

    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _float(values):
    import tensorflow as tf

    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _bytes(value: bytes):
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def slice_example(case_id: str, slice_index: int, num_slices: int, image: np.ndarray, mask: np.ndarray,
                  spacing) -> bytes:
    """Serialise one slice: image (H, W, C) float32, mask (H, W) 0/1."""
    import tensorflow as tf

    h, w, c = image.shape
    feature = {
        F_VERSION: _int([SCHEMA_VERSION]),
        F_CASE: _bytes(case_id.encode()),
        F_SLICE: _int([slice_index]),
        F_NUM_SLICES: _int([num_slices]),
        F_HEIGHT: _int([h]), F_WIDTH: _int([w]), F_CHANNELS: _int([c]),
        F_IMAGE: _bytes(np.ascontiguousarray(image, dtype="<f4").tobytes()),
        F_MASK: _bytes(np.ascontiguousarray(mask, dtype=np.uint8).tobytes()),
        F_SPACING: _float(spacing),
        F_HAS_LESION: _int([int(mask.any())]),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def volume_example(case_id: str, image: np.ndarray, mask: np.ndarray, spacing) -> bytes:
    """Serialise a whole slab: image (D, H, W, C) float32, mask (D, H, W) 0/1."""
    import tensorflow as tf

    d, h, w, c = image.shape
    feature = {
        F_VERSION: _int([SCHEMA_VERSION]),
        F_CASE: _bytes(case_id.encode()),
        F_DEPTH: _int([d]), F_HEIGHT: _int([h]), F_WIDTH: _int([w]), F_CHANNELS: _int([c]),
        F_IMAGE: _bytes(np.ascontiguousarray(image, dtype="<f4").tobytes()),
        F_MASK: _bytes(np.ascontiguousarray(mask, dtype=np.uint8).tobytes()),
        F_SPACING: _float(spacing),
        F_HAS_LESION: _int([int(mask.any())]),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def write_records(path, serialized_examples) -> None:
    """Write serialised Examples to a TFRecord file through a temporary name."""
    import tensorflow as tf


    with atomic_path(path) as tmp:
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for record in serialized_examples:
                writer.write(record)


def _slice_spec():
    import tensorflow as tf

    return {
        F_VERSION: tf.io.FixedLenFeature([], tf.int64),
        F_CASE: tf.io.FixedLenFeature([], tf.string),
        F_SLICE: tf.io.FixedLenFeature([], tf.int64),
        F_NUM_SLICES: tf.io.FixedLenFeature([], tf.int64),
        F_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        F_WIDTH: tf.io.FixedLenFeature([], tf.int64),
        F_CHANNELS: tf.io.FixedLenFeature([], tf.int64),
        F_IMAGE: tf.io.FixedLenFeature([], tf.string),
        F_MASK: tf.io.FixedLenFeature([], tf.string),
        F_SPACING: tf.io.FixedLenFeature([3], tf.float32),
        F_HAS_LESION: tf.io.FixedLenFeature([], tf.int64),
    }


def _volume_spec():
    import tensorflow as tf

    spec = {k: v for k, v in _slice_spec().items() if k not in (F_SLICE, F_NUM_SLICES)}
    spec[F_DEPTH] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def _version_guard(version):
    import tensorflow as tf

    # Files are checked eagerly by check_record_files; this in-graph guard catches anything else.
    return tf.debugging.assert_equal(
        version, tf.constant(SCHEMA_VERSION, tf.int64),
        message=f"islesbench record schema mismatch (expected version {SCHEMA_VERSION})")


def parse_slice(serialized):
    """Parse one slice record into {image (H,W,C) float32, mask (H,W,1) float32, case_id, slice_index, has_lesion}."""
    import tensorflow as tf

    f = tf.io.parse_single_example(serialized, _slice_spec())
    with tf.control_dependencies([_version_guard(f[F_VERSION])]):
        h, w, c = f[F_HEIGHT], f[F_WIDTH], f[F_CHANNELS]
        image = tf.reshape(tf.io.decode_raw(f[F_IMAGE], tf.float32), tf.stack([h, w, c]))
    mask = tf.reshape(tf.cast(tf.io.decode_raw(f[F_MASK], tf.uint8), tf.float32), tf.stack([h, w, 1]))
    return {"image": image, "mask": mask, "case_id": f[F_CASE], "slice_index": f[F_SLICE],
            "has_lesion": f[F_HAS_LESION], "spacing": f[F_SPACING]}


def parse_volume(serialized):
    """Parse a volume record into {image (D,H,W,C) float32, mask (D,H,W,1) float32, case_id, spacing}."""
    import tensorflow as tf

    f = tf.io.parse_single_example(serialized, _volume_spec())
    with tf.control_dependencies([_version_guard(f[F_VERSION])]):
        shape = tf.stack([f[F_DEPTH], f[F_HEIGHT], f[F_WIDTH], f[F_CHANNELS]])
        image = tf.reshape(tf.io.decode_raw(f[F_IMAGE], tf.float32), shape)
    mask = tf.reshape(tf.cast(tf.io.decode_raw(f[F_MASK], tf.uint8), tf.float32),
                      tf.stack([f[F_DEPTH], f[F_HEIGHT], f[F_WIDTH], 1]))
    return {"image": image, "mask": mask, "case_id": f[F_CASE], "spacing": f[F_SPACING],
            "has_lesion": f[F_HAS_LESION]}


def read_volume_record(path) -> dict:
    """Eagerly read a case's volume record as numpy: image (D,H,W,C), mask (D,H,W) bool, spacing."""
    import tensorflow as tf

    raw = _checked_first_record(path)  # one read: the version is checked on the record that is parsed
    try:
        v = parse_volume(raw)
    except (tf.errors.OpError, ValueError) as exc:  # a record whose checksum holds but whose fields do not
        raise IslesbenchError(f"{path}: damaged volume record ({_first_line(exc)}); {_REPREPARE}") from None
    return {"image": v["image"].numpy(), "mask": v["mask"].numpy()[..., 0] > 0.5,
            "case_id": v["case_id"].numpy().decode(), "spacing": tuple(v["spacing"].numpy().tolist())}


def _first_record(path):
    """The first serialised record of a file (IslesbenchError if missing, unreadable or empty)."""
    import tensorflow as tf

    if not Path(path).exists():
        raise IslesbenchError(f"{path}: record file is missing; re-run `islesbench prepare`")
    try:
        for raw in tf.data.TFRecordDataset(str(path)).take(1):
            return raw
    except tf.errors.OpError as exc:
        raise IslesbenchError(f"{path}: unreadable TFRecord file ({_first_line(exc)}); {_REPREPARE}") from None
    raise IslesbenchError(f"{path}: record file is empty; {_REPREPARE}")


_REPREPARE = "delete it and re-run `islesbench prepare` to rewrite it"


def _first_line(exc) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def record_version(path, raw=None) -> int:
    """The schema version of the first record in a file (IslesbenchError if unreadable or empty)."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    raw = _first_record(path) if raw is None else raw
    try:
        values = tf.train.Example.FromString(raw.numpy()).features.feature[F_VERSION].int64_list.value
    except DecodeError as exc:
        raise IslesbenchError(f"{path}: not an islesbench record ({_first_line(exc)}); {_REPREPARE}") from None
    if not values:
        raise IslesbenchError(f"{path}: not an islesbench record (no {F_VERSION} feature)")
    return int(values[0])


def _checked_first_record(path):
    raw = _first_record(path)
    version = record_version(path, raw)
    if version != SCHEMA_VERSION:
        raise IslesbenchError(
            f"{path}: records have schema version {version}, this islesbench reads version "
            f"{SCHEMA_VERSION}; re-run `islesbench prepare` on the raw cohort")
    return raw


# Files this process has read through without fault, by path, with the (inode, size, mtime) they had. A
# grid checks the same files for every fold of every configuration, and a full read costs ~0.8 s a fold.
_CHECKED: dict = {}


def _file_identity(path):
    st = Path(path).stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def check_record_files(paths) -> None:
    """Reject missing, empty or damaged files (every record's checksum is read once, before training
    starts, so a bad file is named instead of failing inside the input pipeline) and files written with
    another schema version, naming the file. A file already read in this process is read again only if
    it has been replaced or changed since (its inode, size or modification time differ)."""
    import tensorflow as tf

    for path in paths:
        key = str(Path(path).resolve())
        try:
            identity = _file_identity(path)
        except OSError:
            identity = None  # missing: _checked_first_record names it
        if identity is not None and _CHECKED.get(key) == identity:
            continue
        _checked_first_record(path)
        try:
            tf.data.TFRecordDataset(str(path)).reduce(np.int64(0), lambda n, _: n + 1)
        except tf.errors.OpError as exc:
            raise IslesbenchError(f"{path}: damaged TFRecord file ({_first_line(exc)}); {_REPREPARE}") from None
        _CHECKED[key] = identity
