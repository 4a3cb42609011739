"""The tf.data input pipelines used by training: files of a fold → interleave → parse → augment → batch.

2-D models read slice records, oversampling slices that contain lesion (DataConfig.lesion_slice_fraction);
3-D models read volume records and cut a slab of DataConfig.slab_depth slices (padded when a volume has
fewer) around a centre slice drawn as the 2-D models draw their slices, so the same share of samples is
centred on lesion in 2-D and 3-D. lesion_statistics counts what the drawn batches hold. Augmentation
(islesbench.data.augment) is stateless and seeded by (seed, element index), so the same seed gives the same batches.
"""

from __future__ import annotations

import math

import tensorflow as tf

from islesbench.config import ExperimentConfig
from islesbench.data import restoration_pairs
from islesbench.data.augment import augment
from islesbench.storage import records
from islesbench.storage.manifest import PreparedData

AUTOTUNE = tf.data.AUTOTUNE
# Batches ready ahead of the model. A fixed, small buffer: with AUTOTUNE the infinite training stream
# kept producing into a growing buffer and took the CPU from the training step (10x slower on 2 cores).
PREFETCH = 2


def _resize_pair(image, mask, size: int):
    if size is None:
        return image, mask
    image = tf.image.resize(image, [size, size], method="bilinear")
    mask = tf.cast(tf.image.resize(mask, [size, size], method="bilinear") > 0.5, tf.float32)
    return image, mask


def _static_shapes(ds, prepared: PreparedData, size, is_3d: bool):
    """Pin the batches' static shapes: parsing and resizing lose them, and a model traced on unknown
    spatial sizes runs far slower (PSPNet's pooling and resizing layers take their dynamic paths)."""
    side = size or prepared.grid
    channels = len(prepared.modalities)
    image = [None, None, side, side, channels] if is_3d else [None, side, side, channels]
    mask = image[:-1] + [1]

    def pin(x, y):
        return tf.ensure_shape(x, image), tf.ensure_shape(y, mask)

    return ds.map(pin)


def _records(files, shuffle: bool, seed: int):
    files_ds = tf.data.Dataset.from_tensor_slices(list(files))
    if shuffle:
        files_ds = files_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    return files_ds.interleave(tf.data.TFRecordDataset, cycle_length=min(8, len(files)),
                               num_parallel_calls=AUTOTUNE, deterministic=True)


def _with_seeds(ds, seed: int):
    return ds.enumerate().map(lambda i, x: (x, tf.stack([tf.constant(seed, tf.int64), i])))


def slice_count(prepared: PreparedData, case_ids) -> int:
    """Number of slice records of these cases (from the manifest)."""
    return sum(int(prepared.cases[c]["num_slices"]) for c in case_ids)


def lesion_slice_count(prepared: PreparedData, case_ids) -> int:
    """Number of slices with lesion among these cases (from the manifest)."""
    return sum(int(prepared.cases[c]["lesion_slices"]) for c in case_ids)


def slice_dataset(prepared: PreparedData, case_ids, config: ExperimentConfig, training: bool,
                  batch_size: int, seed: int | None = None, drop_remainder: bool = False):
    """Batches of (image (B,S,S,C), mask (B,S,S,1)) from slice records; infinite when training.

    drop_remainder (validation only) keeps every batch full, which splitting a batch across replicas needs.
    """
    files = prepared.slice_files(case_ids)
    records.check_record_files(files)
    seed = config.train.seed if seed is None else seed
    size = config.data.input_size
    ds = _records(files, shuffle=training, seed=seed).map(records.parse_slice, num_parallel_calls=AUTOTUNE)
    ds = ds.map(lambda f: (*_resize_pair(f["image"], f["mask"], size), f["has_lesion"]),
                num_parallel_calls=AUTOTUNE).cache()
    if not training:
        n = slice_count(prepared, case_ids)
        n_batches = n // batch_size if drop_remainder else math.ceil(n / batch_size)
        ds = ds.map(lambda im, m, _: (im, m)).batch(batch_size, drop_remainder=drop_remainder)
        ds = _static_shapes(ds, prepared, size, is_3d=False)
        # A known length keeps Keras from warning that validation "ran out of data".
        return ds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(PREFETCH)
    fraction = config.data.lesion_slice_fraction
    n_lesion = lesion_slice_count(prepared, case_ids)
    buffer = max(64, slice_count(prepared, case_ids))
    if 0 < fraction < 1 and n_lesion > 0:
        lesion = ds.filter(lambda im, m, l: l > 0).shuffle(buffer, seed=seed).repeat()
        other = ds.filter(lambda im, m, l: l == 0).shuffle(buffer, seed=seed + 1).repeat()
        ds = tf.data.Dataset.sample_from_datasets([lesion, other], [fraction, 1 - fraction], seed=seed,
                                                  rerandomize_each_iteration=True)
    else:
        ds = ds.shuffle(buffer, seed=seed).repeat()
    ds = ds.map(lambda im, m, _: (im, m))
    if config.data.augment:
        strength = float(config.data.augment_strength)
        ds = _with_seeds(ds, seed).map(lambda x, s: augment(x[0], x[1], s, strength), num_parallel_calls=AUTOTUNE)
    return _static_shapes(ds.batch(batch_size, drop_remainder=True), prepared, size, is_3d=False).prefetch(PREFETCH)


def _slice_flags(mask):
    """Per slice of a (D,H,W,1) mask: does it hold lesion (on the prepared grid, as the slice records say)."""
    return tf.reduce_any(mask > 0, axis=[1, 2, 3])


def _centres(image, mask, flags, lesion):
    """(image, mask, z) for every slice z of one volume whose flag is `lesion` (True, False, or None for all)."""
    keep = tf.ones_like(flags) if lesion is None else tf.equal(flags, lesion)
    z = tf.cast(tf.where(keep)[:, 0], tf.int32)
    # The volume tensors are shared between its slices' elements, not copied.
    return tf.data.Dataset.from_tensor_slices(z).map(lambda k: (image, mask, k))


def _slab_around(image, mask, centre, depth: int, seed):
    """A slab of `depth` slices that contains slice `centre`, its start uniform among those that do (seeded);
    a volume of fewer slices is padded at the end."""
    d = tf.shape(image)[0]
    pad = tf.maximum(depth - d, 0)
    image = tf.pad(image, [[0, pad], [0, 0], [0, 0], [0, 0]])
    mask = tf.pad(mask, [[0, pad], [0, 0], [0, 0], [0, 0]])
    low = tf.maximum(centre - depth + 1, 0)
    high = tf.minimum(centre, tf.maximum(d - depth, 0))
    start = tf.random.stateless_uniform([], seed, low, high + 1, dtype=tf.int32)
    return image[start:start + depth], mask[start:start + depth]


def _slab_centres(volumes, fraction: float, n_slices: int, n_lesion: int, seed: int):
    """The stream of (image, mask, centre slice) the training slabs are cut around, drawn as slice_dataset
    draws its slices: a lesion slice with probability `fraction`, else a slice without lesion, each uniform
    over all training slices of its kind (so a volume counts by its slices, as in 2-D)."""
    buffer = max(64, n_slices)
    if 0 < fraction < 1 and n_lesion > 0:
        lesion = volumes.flat_map(lambda im, m, f: _centres(im, m, f, True)).shuffle(buffer, seed=seed).repeat()
        other = volumes.flat_map(lambda im, m, f: _centres(im, m, f, False)).shuffle(buffer, seed=seed + 1).repeat()
        return tf.data.Dataset.sample_from_datasets([lesion, other], [fraction, 1 - fraction], seed=seed,
                                                    rerandomize_each_iteration=True)
    return volumes.flat_map(lambda im, m, f: _centres(im, m, f, None)).shuffle(buffer, seed=seed).repeat()


def volume_dataset(prepared: PreparedData, case_ids, config: ExperimentConfig, training: bool,
                   batch_size: int, seed: int | None = None):
    """3-D data: training slabs of slab_depth (B,D,S,S,C), or whole volumes one at a time for validation.

    A training slab is cut around a centre slice drawn as the 2-D pipeline draws its slices
    (DataConfig.lesion_slice_fraction of them lesion slices): the same share of samples is centred on
    lesion in 2-D and 3-D.
    """
    files = prepared.volume_files(case_ids)
    records.check_record_files(files)
    seed = config.train.seed if seed is None else seed
    size = config.data.input_size
    ds = _records(files, shuffle=training, seed=seed).map(records.parse_volume, num_parallel_calls=AUTOTUNE)
    if not training:
        ds = ds.map(lambda f: _resize_pair(f["image"], f["mask"], size), num_parallel_calls=AUTOTUNE).cache()
        ds = _static_shapes(ds.batch(1), prepared, size, is_3d=True)
        return ds.apply(tf.data.experimental.assert_cardinality(len(files))).prefetch(PREFETCH)
    ds = ds.map(lambda f: (*_resize_pair(f["image"], f["mask"], size), _slice_flags(f["mask"])),
                num_parallel_calls=AUTOTUNE).cache()
    depth = config.data.slab_depth
    centres = _slab_centres(ds, config.data.lesion_slice_fraction, slice_count(prepared, case_ids),
                            lesion_slice_count(prepared, case_ids), seed)

    def slab(x, s):
        seeds = tf.random.experimental.stateless_split(s, num=2)
        image, mask = _slab_around(x[0], x[1], x[2], depth, seeds[0])
        if config.data.augment:
            image, mask = augment(image, mask, seeds[1], float(config.data.augment_strength))
        return image, mask

    ds = _with_seeds(centres, seed).map(slab, num_parallel_calls=AUTOTUNE).batch(batch_size, drop_remainder=True)
    return _static_shapes(ds, prepared, size, is_3d=True).prefetch(PREFETCH)


def steps_per_epoch(prepared: PreparedData, case_ids, config: ExperimentConfig, is_3d: bool,
                    fold_train_ids=None) -> int:
    """One pass over the training slices (2-D) or slices/slab_depth slabs (3-D), unless configured.

    With a training fraction, `fold_train_ids` (the fold's whole training set) sets the pass when
    train.fraction_steps is `matched`: every fraction then trains for the same optimizer steps.
    """
    if config.train.steps_per_epoch:
        return int(config.train.steps_per_epoch)
    n = slice_count(prepared, steps_basis_cases(case_ids, config, fold_train_ids))
    per_step = config.train.batch_size * (config.data.slab_depth if is_3d else 1)
    return max(1, math.ceil(n / per_step))


def steps_basis_cases(case_ids, config: ExperimentConfig, fold_train_ids=None):
    """The cases one pass of which is an epoch when steps_per_epoch is not configured (see steps_per_epoch)."""
    if fold_train_ids is not None and config.data.train_fraction < 1 and config.train.fraction_steps == "matched":
        return list(fold_train_ids)
    return list(case_ids)


def _lesion_counts(mask):
    """[batches, samples, lesion samples, slices, lesion slices, voxels, lesion voxels] of one mask batch."""
    lesion = tf.cast(mask > 0.5, tf.float64)
    rank = len(mask.shape)
    slices = tf.reshape(lesion, [-1, tf.reduce_prod(tf.shape(lesion)[rank - 3:])])  # (B or B*D, H*W)
    samples = tf.reshape(lesion, [tf.shape(lesion)[0], -1])
    return tf.stack([tf.constant(1, tf.float64),
                     tf.cast(tf.shape(samples)[0], tf.float64), tf.reduce_sum(tf.reduce_max(samples, 1)),
                     tf.cast(tf.shape(slices)[0], tf.float64), tf.reduce_sum(tf.reduce_max(slices, 1)),
                     tf.cast(tf.size(lesion), tf.float64), tf.reduce_sum(lesion)])


def _statistics(totals) -> dict:
    batches, samples, lesion_samples, slices, lesion_slices, voxels, lesion_voxels = (float(v) for v in totals)
    return {"batches": int(batches), "samples": int(samples), "lesion_samples": int(lesion_samples),
            "lesion_sample_share": lesion_samples / samples if samples else None,
            "slices": int(slices), "lesion_slices": int(lesion_slices),
            "lesion_slice_share": lesion_slices / slices if slices else None,
            "lesion_voxel_share": lesion_voxels / voxels if voxels else None}


def lesion_statistics(batches, num_batches: int) -> dict:
    """What the first `num_batches` batches of `batches` ((image, mask) batches, 2-D or 3-D) hold: samples,
    axial slices and voxels, and how many of each contain lesion; their shares."""
    zero = tf.zeros([7], tf.float64)
    return _statistics(batches.take(num_batches).map(lambda _, m: _lesion_counts(m)).reduce(zero, tf.add).numpy())


class LesionCounter:
    """Counts, as training draws them, what the batches passing through `count` hold (as lesion_statistics).

    A side counter in the pipeline's graph: no second pass over the data, and it sees every batch fit draws
    (and the few prefetched ahead of it)."""

    def __init__(self):
        with tf.device("/cpu:0"):
            self.totals = tf.Variable(tf.zeros([7], tf.float64), trainable=False)

    def count(self, ds):
        """`ds` ((image, mask) batches) with every batch it yields counted."""
        def add(image, mask):
            with tf.control_dependencies([self.totals.assign_add(_lesion_counts(mask))]):
                return tf.identity(image), tf.identity(mask)

        return ds.map(add)

    def statistics(self) -> dict:
        """lesion_statistics' fields over every batch counted so far."""
        return _statistics(self.totals.numpy())


def with_targets(ds, output_names):
    """Repeat the mask target for every model output (PSPNet's auxiliary head has its own)."""
    names = tuple(output_names)
    if len(names) <= 1:
        return ds
    return ds.map(lambda x, y: (x, {n: y for n in names}))


def training_dataset(prepared, case_ids, config: ExperimentConfig, is_3d: bool, batch_size: int,
                     seed=None, output_names=("mask",), counter: LesionCounter | None = None):
    """The infinite, augmented training batches for a 2-D or 3-D model (each counted by `counter`, if any)."""
    build = volume_dataset if is_3d else slice_dataset
    ds = build(prepared, case_ids, config, training=True, batch_size=batch_size, seed=seed)
    if counter is not None:
        ds = counter.count(ds)
    return with_targets(ds, output_names)


def multi_worker_training_dataset(prepared, case_ids, config: ExperimentConfig, is_3d: bool, output_names):
    """Global batches that Keras distributes over the workers; each worker keeps its share of elements."""
    ds = training_dataset(prepared, case_ids, config, is_3d, config.train.batch_size, output_names=output_names)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def distributed_training_dataset(strategy, prepared, case_ids, config: ExperimentConfig, is_3d: bool, seed=None,
                                 output_names=("mask",), counter: LesionCounter | None = None):
    """One host, many replicas: the dataset built per input pipeline by the strategy (per-replica batches,
    all counted by `counter`, if any)."""
    global_batch = config.train.batch_size

    def dataset_fn(input_context):
        per_replica = input_context.get_per_replica_batch_size(global_batch)
        base_seed = (config.train.seed if seed is None else seed) + 1000 * input_context.input_pipeline_id
        return training_dataset(prepared, case_ids, config, is_3d, per_replica, base_seed, output_names, counter)

    return strategy.distribute_datasets_from_function(dataset_fn)


def restoration_dataset(files, num_slices: int, input_size: int, batch_size: int, seed: int, windows,
                        genesis_config, skip_batches: int = 0):
    """Infinite batches of (distorted slice, [0, 1] target) for self-supervised restoration pretraining.

    Reads the slice records of `files` (any prepared cohorts with the same channels; masks are never
    used), resized to input_size, and turns each into a Models Genesis pair (islesbench.data.restoration_pairs), seeded
    by (seed, element index). `windows` is one (low, high) per channel. `skip_batches` continues the
    stream after that many batches (a resumed run): the skipped elements are not transformed.
    """
    files = list(files)
    records.check_record_files(files)
    lows, highs = [float(w[0]) for w in windows], [float(w[1]) for w in windows]
    ds = _records(files, shuffle=True, seed=seed).map(records.parse_slice, num_parallel_calls=AUTOTUNE)
    ds = ds.map(lambda f: tf.image.resize(f["image"], [input_size, input_size], method="bilinear"),
                num_parallel_calls=AUTOTUNE).cache()
    ds = ds.shuffle(max(64, num_slices), seed=seed).repeat()
    ds = _with_seeds(ds, seed).skip(skip_batches * batch_size)
    channels = len(windows)

    def pair(image, element_seed):
        image = tf.ensure_shape(image, [input_size, input_size, channels])
        return restoration_pairs.restoration_pair(image, element_seed, lows, highs, genesis_config)

    ds = ds.map(pair, num_parallel_calls=AUTOTUNE).batch(batch_size, drop_remainder=True)
    shape = [batch_size, input_size, input_size, channels]
    return ds.map(lambda x, y: (tf.ensure_shape(x, shape), tf.ensure_shape(y, shape))).prefetch(PREFETCH)
