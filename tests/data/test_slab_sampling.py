"""The V-Net's training slabs: drawn around the slices the 2-D pipeline would draw, seeded; what batches hold."""

import numpy as np
import pytest

from islesbench.config import apply_overrides, profile_config
from islesbench.data import pipeline


@pytest.fixture(scope="module")
def whole_brain_prepared(tiny_isles24, tmp_path_factory):
    """Whole-brain volumes (38 slices at 4 mm) whose lesions fill 7-15 of them: most slabs of 8 miss the lesion."""
    from islesbench.data_prep.prepare import prepare_cohort

    return prepare_cohort(tiny_isles24, tmp_path_factory.mktemp("prepared24"), folds=2, seed=0, grid=32)


def _config(arch: str, fraction: float, seed: int = 0):
    batch = 4 if arch == "vnet" else 32  # the same 32 slices a step
    return apply_overrides(profile_config("quick", arch), {"data": {"input_size": 32, "lesion_slice_fraction": fraction},
                                                          "train": {"batch_size": batch, "seed": seed}})


def _statistics(prepared, arch: str, fraction: float, batches: int = 50) -> dict:
    config = _config(arch, fraction)
    ds = pipeline.training_dataset(prepared, prepared.case_ids("TRAINING"), config, arch == "vnet",
                                   config.train.batch_size)
    return pipeline.lesion_statistics(ds, batches)


@pytest.mark.parametrize("fraction", [0.2, 0.8])
def test_slabs_follow_the_configured_lesion_fraction_as_2d_slices_do(whole_brain_prepared, fraction):
    # The uniform crop drew ~51 % lesion slabs here at any configured fraction.
    slices = _statistics(whole_brain_prepared, "unet", fraction)
    slabs = _statistics(whole_brain_prepared, "vnet", fraction)
    assert abs(slices["lesion_sample_share"] - fraction) < 0.06
    # Every slab contains the slice it is centred on, which is a lesion slice with probability `fraction`;
    # a slab centred elsewhere may still reach the lesion.
    assert slabs["lesion_sample_share"] >= fraction - 0.07
    assert slabs["lesion_sample_share"] <= fraction + 0.5 * (1 - fraction)
    assert slabs["samples"] == 200 and slabs["slices"] == 200 * 8


def test_the_slab_share_moves_with_the_fraction(whole_brain_prepared):
    low, high = (_statistics(whole_brain_prepared, "vnet", f)["lesion_sample_share"] for f in (0.2, 0.8))
    assert high - low > 0.3


def test_same_seed_same_slabs_other_seed_other_slabs(whole_brain_prepared):
    ids = whole_brain_prepared.case_ids("TRAINING")

    def first_batches(seed):
        config = _config("vnet", 0.5, seed)
        ds = pipeline.training_dataset(whole_brain_prepared, ids, config, True, config.train.batch_size)
        return [m for _, m in ds.take(3).as_numpy_iterator()]

    a, b, c = first_batches(0), first_batches(0), first_batches(1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c))


def test_lesion_statistics_count_samples_slices_and_voxels():
    import tensorflow as tf

    mask = np.zeros((2, 3, 4, 4, 1), np.float32)  # two slabs of three 4x4 slices
    mask[0, 1, :2, :2] = 1  # 4 voxels in one slice of the first slab
    batches = tf.data.Dataset.from_tensors((tf.zeros_like(mask), tf.constant(mask))).repeat()
    stats = pipeline.lesion_statistics(batches, 2)
    assert stats["samples"] == 4 and stats["lesion_samples"] == 2 and stats["lesion_sample_share"] == 0.5
    assert stats["slices"] == 12 and stats["lesion_slices"] == 2
    assert stats["lesion_voxel_share"] == pytest.approx(8 / (2 * 2 * 3 * 16))
