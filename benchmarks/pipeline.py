"""Slices per second through the tf.data pipeline (parse + augment + batch) against re-reading NIfTI.

    python benchmarks/pipeline.py [--cases 20] [--work /tmp/islesbench-bench] [--input-size 96]

Builds (or reuses) a synthetic cohort and its records, then times
  * tf.data: `islesbench.data.pipeline.slice_dataset` as training uses it (interleave, parse, resize, cache,
    lesion oversampling, augmentation, batch, prefetch), after one warm-up pass that fills the cache;
  * the V-Net's slabs (`volume_dataset`: slabs of 8 cut around slices drawn as the 2-D ones are), the same way,
    and the share of drawn slices that hold lesion in each stream (`pipeline.lesion_statistics`);
  * NIfTI: what a loader without records does each epoch: read every case's maps, normalise,
    resample to the grid and cut slices.
Goal: tf.data at least 10x the NIfTI path, and faster than the training step consumes slices.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--work", default="/tmp/islesbench-bench")
    parser.add_argument("--input-size", type=int, default=96)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()

    from islesbench import layouts
    from islesbench.config import apply_overrides, profile_config
    from islesbench.data.pipeline import lesion_statistics, slice_dataset, volume_dataset
    from islesbench.data_prep.prepare import prepare_cohort
    from islesbench.data_prep.synth import synthesize_cohort
    from islesbench.imaging import preprocessing
    from islesbench.storage.manifest import PreparedData, is_prepared_dir

    work = Path(args.work)
    raw, prep = work / f"cohort{args.cases}", work / f"prepared{args.cases}"
    if not (raw / "TRAINING").is_dir():
        synthesize_cohort(raw, cases=args.cases, seed=0)
    prepared = PreparedData(prep) if is_prepared_dir(prep) else prepare_cohort(raw, prep, folds=5, seed=0)
    case_ids = prepared.case_ids("TRAINING")
    config = apply_overrides(profile_config("quick"), {"data": {"input_size": args.input_size}})
    batch = config.train.batch_size

    ds = slice_dataset(prepared, case_ids, config, training=True, batch_size=batch)
    it = iter(ds)
    n_slices = sum(prepared.cases[c]["num_slices"] for c in case_ids)
    for _ in range(max(1, n_slices // batch) + 2):  # warm-up: fill the cache once
        next(it)
    t0 = time.perf_counter()
    for _ in range(args.batches):
        next(it)
    tfdata_rate = args.batches * batch / (time.perf_counter() - t0)
    slice_share = lesion_statistics(ds, args.batches)["lesion_slice_share"]

    vnet = apply_overrides(profile_config("quick", "vnet"), {"data": {"input_size": args.input_size}})
    slabs = volume_dataset(prepared, case_ids, vnet, training=True, batch_size=vnet.train.batch_size)
    it = iter(slabs)
    for _ in range(max(1, n_slices // (vnet.train.batch_size * vnet.data.slab_depth)) + 2):
        next(it)
    t0 = time.perf_counter()
    for _ in range(args.batches):
        next(it)
    slab_rate = args.batches * vnet.train.batch_size * vnet.data.slab_depth / (time.perf_counter() - t0)
    slab_share = lesion_statistics(slabs, args.batches)["lesion_slice_share"]

    cases = [c for c in layouts.discover_cohort(raw / "TRAINING")]
    modalities = prepared.modalities
    t0 = time.perf_counter()
    count = 0
    for cf in cases:
        case = layouts.load_case(cf, modalities=modalities)
        params = preprocessing.normalization_params(case.volumes, modalities)
        image, mask = preprocessing.case_to_records_arrays(case.volumes, case.mask, modalities, params, prepared.grid)
        count += image.shape[0]
    nifti_rate = count / (time.perf_counter() - t0)

    print(f"cohort: {len(case_ids)} cases, {n_slices} slices, grid {prepared.grid}, input {args.input_size}, batch {batch}")
    print(f"tf.data (parse+augment+batch, cached): {tfdata_rate:8.1f} slices/s, {slice_share:.2f} of them lesion")
    print(f"tf.data V-Net slabs of {vnet.data.slab_depth}:            {slab_rate:8.1f} slices/s, {slab_share:.2f} of them lesion")
    print(f"NIfTI re-read each epoch:              {nifti_rate:8.1f} slices/s")
    print(f"speed-up: {tfdata_rate / nifti_rate:.1f}x (goal >= 10x)")


if __name__ == "__main__":
    main()
