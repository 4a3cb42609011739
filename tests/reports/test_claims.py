"""Claims are tested on matched pairs only: config differences, the factor each claim may change."""

import pytest

from islesbench.config import apply_overrides, profile_config
from islesbench.reports import claims


def _config(profile, arch, pretrained=None, loss="focal", **extra):
    cfg = apply_overrides(profile_config(profile, arch, pretrained),
                          {"loss": {"name": loss}, "model": {"pretrained": pretrained}})
    return {**cfg.to_dict(), "cohort": "synthetic", "splits_fingerprint": "abc", **extra}


def test_differences_name_every_field_and_ignore_run_locations():
    a = _config("quick", "unet", prepared="/x", raw_data="/r")
    b = _config("quick", "unet", loss="ce", prepared="/y", raw_data="/s")
    assert claims.config_differences(a, b) == {"loss.name": ("focal", "ce")}


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_each_profiles_loss_and_2d_vs_3d_pairs_are_controlled(profile):
    for arch in ("unet", "vnet", "pspnet"):
        check = claims.check_pair("loss", _config(profile, arch), _config(profile, arch, loss="ce"))
        assert check.controlled, (arch, check)
    check = claims.check_pair("architecture", _config(profile, "unet"), _config(profile, "vnet"))
    assert check.controlled, check  # same input size, schedule, optimiser; 16 slices a step each


def test_pretrained_vs_scratch_is_matched_in_the_paper_profile_only():
    paper = claims.check_pair("pretraining", _config("paper", "pspnet", "imagenet"), _config("paper", "pspnet"))
    assert paper.controlled and paper.differences == ["model.pretrained: imagenet → None"]
    quick = claims.check_pair("pretraining", _config("quick", "pspnet", "imagenet"), _config("quick", "pspnet"))
    assert not quick.controlled
    assert set(quick.confounders) == {"model.encoder_width", "data.input_size", "optimizer.learning_rate"}


def test_other_data_folds_or_seeds_confound_any_pair():
    a, b = _config("quick", "unet"), _config("quick", "unet", loss="ce", splits_fingerprint="other")
    assert claims.check_pair("loss", a, b).confounders == ["splits_fingerprint"]
    check = claims.check_pair("loss", a, _config("quick", "unet", loss="ce"), seeds_a=(0, 1), seeds_b=(0,))
    assert not check.controlled and check.confounders == ["seeds"]
    same = claims.check_pair("loss", a, _config("quick", "unet"))
    assert not same.controlled and "do not differ in loss" in same.note


def test_2d_vs_3d_with_other_slices_per_step_is_not_controlled():
    vnet = _config("quick", "vnet")
    vnet["train"]["batch_size"] = 4  # 4 slabs of 8 = 32 slices a step against U-Net's 16
    check = claims.check_pair("architecture", _config("quick", "unet"), vnet)
    assert not check.controlled and "16 vs 32 slices per step" in check.note


def test_claim_pairs_include_missing_partners_and_skip_tuned_runs():
    configs = {"unet-focal": _config("quick", "unet"), "vnet-focal": _config("quick", "vnet"),
               "unet-focal-tuned-nonnested": {**_config("quick", "unet"), "tuning": {"nested": False}}}
    pairs = {(p.label, p.first, p.second) for p in claims.claim_pairs(configs)}
    assert ("2-D > 3-D: U-Net vs V-Net (focal)", "unet-focal", "vnet-focal") in pairs
    assert ("focal > CE (unet)", "unet-focal", "unet-ce") in pairs  # the partner that did not run
    assert not any("tuned" in p[1] or "tuned" in p[2] for p in pairs)


def test_folds_from_other_code_or_machines_confound_any_pair():
    a, b = _config("quick", "unet"), _config("quick", "unet", loss="ce")
    record = {"commit": "a" * 40, "tree_modified": True, "diff_sha256": "d" * 64, "versions": {"numpy": "2.2.6"},
              "machine": {"cpu_model": "Xeon", "cpu_flags": ["amx_bf16"], "devices": ["CPU"], "replicas": 1}}
    same = claims.check_pair("loss", a, b, provenance_a=[record, dict(record, command="other")],
                             provenance_b=[record])
    assert same.controlled  # the command line and the like do not count
    other_diff = claims.check_pair("loss", a, b, provenance_a=[record], provenance_b=[dict(record, diff_sha256="e" * 64)])
    assert other_diff.confounders == ["provenance (diff_sha256: dddddddddddd vs eeeeeeeeeeee)"]
    unknown = claims.check_pair("loss", a, b, provenance_a=[record], provenance_b=[None])
    assert not unknown.controlled and "not recorded" in unknown.confounders[0]
    gpu = claims.check_pair("loss", a, b, provenance_a=[record],
                            provenance_b=[dict(record, machine={**record["machine"], "devices": ["GPU: NVIDIA H200"]})])
    assert gpu.confounders == ["provenance (machine.devices: CPU vs GPU: NVIDIA H200)"]


def test_an_interval_spanning_zero_is_not_shown_and_does_not_hold_only_beyond_the_papers_effect():
    from islesbench.reports import anchors

    effect = anchors.paper_effect("pspnet-imagenet-focal", "pspnet-scratch-focal")
    assert effect.value == 0.07
    wide = claims.claim_outcome((-0.05, 0.10), 0.4, paper_effect=effect)
    assert wide == "not shown: the interval spans zero" and "does not hold" not in wide
    narrow = claims.claim_outcome((-0.02, 0.03), 0.4, paper_effect=effect)
    assert narrow.startswith("not shown: the interval spans zero") and "does not hold at the paper's size" in narrow
    assert "does not hold" not in claims.claim_outcome((-0.02, 0.03), 0.4)  # the paper states no number
    assert claims.claim_outcome((0.01, 0.09), 0.01, paper_effect=effect) == "shown: first > second"
    assert claims.claim_outcome((0.01, 0.09), 0.2).startswith("not shown: p (Holm)")
    assert claims.claim_outcome((-0.09, -0.01), 0.01) == "reversed: second > first"


@pytest.mark.parametrize("pretraining, flag", [
    ({"folds": {"0": {"file": "mine.keras", "leak": "unknown", "saw_validation_cases": None}}}, "unknown data"),
    # config.json of a run made before `leak` was recorded: an unknown record said so in `record`
    ({"folds": {"0": {"file": "mine.keras", "record": "none (not written by islesbench pretrain)"}}}, "unknown data"),
    ({"folds": {"0": {"file": "fold_0.keras", "leak": "saw validation cases", "saw_validation_cases": 3}}},
     "pretrained on 3 of its validation cases"),
])
def test_a_pair_with_an_encoder_of_unknown_or_leaky_pretraining_is_not_controlled(pretraining, flag):
    first = _config("paper", "pspnet", "mine.keras", pretraining=pretraining)
    check = claims.check_pair("pretraining", first, _config("paper", "pspnet"))
    assert not check.controlled and not check.confounders
    assert len(check.leaks) == 1 and check.leaks[0].startswith("first: ") and flag in check.leaks[0]
    clean = {"folds": {"0": {"file": "fold_0.keras", "leak": "none", "saw_validation_cases": 0}}}
    assert claims.check_pair("pretraining", _config("paper", "pspnet", "mine.keras", pretraining=clean),
                             _config("paper", "pspnet")).controlled


def _facts(steps=150, replicas=1, slice_share=0.5, voxel_share=0.008, folds=(0, 1)):
    return {(0, k): {"optimizer_steps": steps, "replicas": replicas,
                     "drawn": {"lesion_slice_share": slice_share, "lesion_voxel_share": voxel_share,
                               "lesion_sample_share": slice_share}} for k in folds}


def _check(facts_a, facts_b, factor="loss"):
    a, b = _config("quick", "unet"), _config("quick", "unet", loss="ce")
    if factor == "architecture":
        b = _config("quick", "vnet")
    return claims.check_pair(factor, a, b, facts=(claims.training_summary(facts_a), claims.training_summary(facts_b)))


def test_a_pair_whose_training_resolved_alike_is_controlled():
    assert _check(_facts(), _facts()).controlled
    # measurement noise in the drawn shares is not a difference (slabs around the slices 2-D draws)
    assert _check(_facts(), _facts(slice_share=0.47, voxel_share=0.0096), "architecture").controlled


def test_a_pair_whose_training_resolved_differently_is_flagged():
    # e.g. a uniformly cropped V-Net against half-lesion 2-D batches, or another replica count
    check = _check(_facts(), _facts(slice_share=0.1, voxel_share=0.002), "architecture")
    assert not check.controlled
    assert set(check.confounders) == {"drawn slices with lesion", "drawn lesion voxels"}
    assert "drawn slices with lesion: 0.50 → 0.10" in check.differences
    check = _check(_facts(), _facts(steps=75))
    assert check.confounders == ["optimizer steps per fold"]
    assert "optimizer steps per fold: fold 0: 150, fold 1: 150 → fold 0: 75, fold 1: 75" in check.differences
    assert _check(_facts(), _facts(replicas=2)).confounders == ["replicas"]


def test_a_side_without_recorded_training_facts_is_flagged():
    unrecorded = {key: None for key in _facts()}
    check = _check(_facts(), unrecorded)
    assert not check.controlled and check.confounders == ["training facts"]
    assert "training facts: recorded → not recorded for 2 fold(s)" in check.differences


def test_other_slices_per_step_are_still_named_beside_other_training_facts():
    vnet = _config("quick", "vnet")
    vnet["train"]["batch_size"] = 4
    facts = (claims.training_summary(_facts()), claims.training_summary(_facts(steps=75)))
    check = claims.check_pair("architecture", _config("quick", "unet"), vnet, facts=facts)
    assert check.confounders == ["slices per step", "optimizer steps per fold"]
