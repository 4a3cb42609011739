"""Training on a share of a fold's patients: nested, by patient, seeded; named and recorded."""

from __future__ import annotations

import json

import pytest

from islesbench.config import ExperimentConfig, apply_overrides, profile_config
from islesbench.data import fractions
from islesbench.errors import IslesbenchError

TRAIN = [f"case_{i}" for i in range(1, 21)]
# case_1..case_4 are two two-slab patients; the others their own
PATIENT_OF = {"case_1": "A", "case_2": "A", "case_3": "B", "case_4": "B"}


def test_subsets_are_nested_by_patient_and_seeded():
    sets = {f: fractions.training_subset(TRAIN, PATIENT_OF, f, seed=0, fold=1) for f in (0.1, 0.25, 0.5, 1.0)}
    assert sets[1.0] == TRAIN
    assert set(sets[0.1]) <= set(sets[0.25]) <= set(sets[0.5]) <= set(sets[1.0])
    n_patients = 18
    for f, cases in sets.items():
        patients = {PATIENT_OF.get(c, c) for c in cases}
        assert len(patients) == max(1, -(-int(f * 100) * n_patients // 100))
        for p in ("A", "B"):  # a patient's slabs are taken together or not at all
            slabs = [c for c in TRAIN if PATIENT_OF.get(c) == p]
            assert set(slabs) <= set(cases) or not set(slabs) & set(cases)
    assert fractions.training_subset(TRAIN, PATIENT_OF, 0.25, seed=0, fold=1) == sets[0.25]
    others = {tuple(fractions.training_subset(TRAIN, PATIENT_OF, 0.25, seed=s, fold=k)) for s in (0, 1) for k in (0, 1)}
    assert len(others) > 1  # another seed or fold draws another subset
    assert len(fractions.training_subset(TRAIN[:2], {}, 0.01, seed=0, fold=0)) == 1  # never empty


def test_parse_fractions():
    assert fractions.parse_fractions("1.0, 0.25,0.5,0.25") == [0.25, 0.5, 1.0]
    for bad in ("0", "1.5", "x", ""):
        with pytest.raises(ValueError):
            fractions.parse_fractions(bad)
    assert fractions.parse_fractions([1, 0.25, 0.5, 0.25]) == [0.25, 0.5, 1.0]  # a grid file's list
    for bad in ([], [0], [1.5], [True], ["0.5"], None, 0.5):
        with pytest.raises(ValueError):
            fractions.parse_fractions(bad)


def test_fraction_is_named_validated_and_left_out_of_config_json_when_whole():
    config = profile_config("quick", "pspnet")
    assert "train_fraction" not in config.to_dict()["data"]  # config.json of older runs still matches
    quarter = apply_overrides(config, {"data": {"train_fraction": 0.25}, "train": {"seed": 1}})
    assert quarter.name == "pspnet-scratch-focal-frac0.25-seed1"
    assert quarter.to_dict()["data"]["train_fraction"] == 0.25
    assert ExperimentConfig.from_dict(json.loads(json.dumps(quarter.to_dict()))) == quarter
    with pytest.raises(IslesbenchError, match="train_fraction"):
        apply_overrides(config, {"data": {"train_fraction": 0}}).validate()


def test_a_pretrain_folder_keeps_the_quick_width():
    assert profile_config("quick", "pspnet", "runs/pretraining/selfsup").model.encoder_width == 0.125
    assert profile_config("quick", "pspnet", "weights.h5").model.encoder_width == 1.0
    assert profile_config("quick", "pspnet", "imagenet").model.encoder_width == 1.0


def test_every_fraction_trains_for_the_steps_of_the_whole_fold_unless_told(tiny_prepared):
    from islesbench.data import pipeline

    fold_train = tiny_prepared.splits()[0]["train"]
    patient_of = tiny_prepared.patient_of()
    full = profile_config("paper", "unet")  # steps_per_epoch None: an epoch is one pass over the training slices
    assert full.train.steps_per_epoch is None and full.train.fraction_steps == "matched"
    per_step = 2  # slices a step: 2 slices, or 1 slab of 2 (fold 0 trains on 19 slices; its halves on fewer)
    for arch in ("unet", "vnet"):
        config = apply_overrides(profile_config("paper", arch), {"train": {"batch_size": 2 if arch == "unet" else 1},
                                                                 "data": {"slab_depth": 2}})
        everything = -(-pipeline.slice_count(tiny_prepared, fold_train) // per_step)
        for f in (0.25, 0.5):
            share = apply_overrides(config, {"data": {"train_fraction": f}})
            subset = fractions.training_subset(fold_train, patient_of, f, seed=0, fold=0)
            assert len(subset) < len(fold_train)
            assert pipeline.steps_per_epoch(tiny_prepared, subset, share, arch == "vnet", fold_train) == everything
            proportional = apply_overrides(share, {"train": {"fraction_steps": "proportional"}})
            fewer = -(-pipeline.slice_count(tiny_prepared, subset) // per_step)
            assert pipeline.steps_per_epoch(tiny_prepared, subset, proportional, arch == "vnet", fold_train) == fewer
            assert fewer < everything

def test_the_steps_choice_is_recorded_where_it_matters_and_validated():
    quick, paper = profile_config("quick", "unet"), profile_config("paper", "unet")
    assert "fraction_steps" not in paper.to_dict()["train"]  # all patients: nothing to choose
    assert "fraction_steps" not in apply_overrides(quick, {"data": {"train_fraction": 0.5}}).to_dict()["train"]
    half = apply_overrides(paper, {"data": {"train_fraction": 0.5}})
    assert half.to_dict()["train"]["fraction_steps"] == "matched"
    assert ExperimentConfig.from_dict(json.loads(json.dumps(half.to_dict()))) == half
    with pytest.raises(IslesbenchError, match="fraction_steps"):
        apply_overrides(half, {"train": {"fraction_steps": "fewer"}}).validate()
