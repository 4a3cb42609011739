"""islesbench.training.hparams: a search is taken only for the run it was made for (arch, loss, profile, data)."""

from __future__ import annotations

import json

import pytest

from islesbench.config import apply_overrides, profile_config
from islesbench.errors import IslesbenchError
from islesbench.training.hparams import read_tuned_hparams


def _search(path, prepared, **fields):
    record = {"config_overrides": {"model": {"base_width": 8}}, "arch": "unet", "loss": "focal", "profile": "quick",
              "cohort": prepared.cohort_label, "prepared_data": prepared.data_fingerprint(), "outer_fold": None,
              **fields}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def _unet():
    return apply_overrides(profile_config("quick", "unet"), {"loss": {"name": "focal"}})


@pytest.mark.parametrize("fields, words", [
    ({"arch": "vnet"}, "arch 'vnet', this run's 'unet'"),
    ({"loss": "ce"}, "loss 'ce', this run's 'focal'"),
    ({"profile": "paper"}, "profile 'paper', this run's 'quick'"),
    ({"prepared_data": "0123456789abcdef"}, "prepared data 0123456789abcdef"),
    ({"prepared_data": None, "cohort": "ISLES 2018"}, "cohort 'ISLES 2018'"),
])
def test_a_search_made_for_another_run_is_refused(tiny_prepared, tmp_path, fields, words):
    single = read_tuned_hparams(_search(tmp_path / "best_hparams.json", tiny_prepared, **fields))
    with pytest.raises(IslesbenchError, match="a search made for another run") as info:
        single.check_folds([0, 1], tiny_prepared.splits(), _unet(), tiny_prepared)
    assert words in str(info.value) and "\n" not in str(info.value)
    splits = tiny_prepared.splits()
    for k in (0, 1):  # the nested form: each outer fold's search is checked
        _search(tmp_path / "nested" / f"outer_fold_{k}" / "best_hparams.json", tiny_prepared,
                **(fields if k == 1 else {}), outer_fold=k, outer_val=splits[k]["val"])
    nested = read_tuned_hparams(tmp_path / "nested")
    nested.check_folds([0], splits, _unet(), tiny_prepared)
    with pytest.raises(IslesbenchError, match="outer_fold_1/best_hparams.json: a search made for another run"):
        nested.check_folds([0, 1], splits, _unet(), tiny_prepared)


def test_the_search_of_this_run_is_taken(tiny_prepared, tmp_path):
    read_tuned_hparams(_search(tmp_path / "best_hparams.json", tiny_prepared)).check_folds(
        [0, 1], tiny_prepared.splits(), _unet(), tiny_prepared)
    # a search recorded before arch, loss, profile or data were (only config_overrides): nothing to compare
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"config_overrides": {}, "outer_fold": None}))
    read_tuned_hparams(old).check_folds([0, 1], tiny_prepared.splits(), _unet(), tiny_prepared)
