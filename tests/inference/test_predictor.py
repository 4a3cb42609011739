"""`islesbench predict --model`: checkpoint, fold, run or ensemble folder; anything else one named line."""

import json
import shutil

import numpy as np
import pytest

from islesbench import layouts
from islesbench.cli import main
from islesbench.config import apply_overrides, profile_config
from islesbench.errors import IslesbenchError
from islesbench.storage import run_layout
from islesbench.training.cross_validation import run_configuration

TINY = {"model": {"arch": "unet", "base_width": 4, "depth": 2}, "data": {"input_size": 48},
        "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4}}


@pytest.fixture(scope="module")
def runs(tiny_prepared, tmp_path_factory):
    """Two finished tiny runs (focal, ce) over both folds, and their ensemble."""
    from islesbench.inference.ensemble import ensemble_runs

    root = tmp_path_factory.mktemp("predict_runs")
    for loss in ("focal", "ce"):
        config = apply_overrides(apply_overrides(profile_config("quick", "unet"), TINY), {"loss": {"name": loss}})
        run_configuration(config, tiny_prepared, root)
    ensemble_runs([root / "unet-focal", root / "unet-ce"], root / "ensemble-top2")
    return root


def _predict(model, cohort, out, *extra):
    return main(["predict", "--model", str(model), "--input", str(cohort / "TESTING"), "--out", str(out), *extra])


def test_ensemble_folder_averages_its_members_with_the_ensembles_threshold(runs, tiny_cohort, tmp_path):
    from islesbench.inference.predictor import Predictor

    ensemble = Predictor.load(runs / "ensemble-top2")
    singles = [Predictor.load(runs / name) for name in ("unet-focal", "unet-ce")]
    assert len(ensemble.members) == 2 and sum(len(m.models) for m in ensemble.members) == 4
    stored = [run_layout.read_threshold(p.threshold_json) for _, p in run_layout.list_folds(runs / "ensemble-top2")]
    assert ensemble.threshold == pytest.approx(np.mean(stored))
    case = layouts.load_case(layouts.discover_cohort(tiny_cohort / "TESTING")[0], with_mask=False)
    np.testing.assert_allclose(ensemble.probability(case.volumes),
                               np.mean([s.probability(case.volumes) for s in singles], axis=0), atol=1e-6)
    assert _predict(runs / "ensemble-top2", tiny_cohort, tmp_path / "out", "--probabilities") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["case_9.nii.gz", "case_9_prob.nii.gz"]


def test_fold_folder_is_its_checkpoint(runs, tiny_cohort, tmp_path):
    assert _predict(run_layout.fold_paths(runs, "unet-focal", 1).root, tiny_cohort, tmp_path / "o.nii.gz") == 0


@pytest.mark.parametrize("damage, words", [
    ("keras", "unreadable Keras checkpoint"),
    ("threshold", "threshold file"),
    ("config", "run configuration"),
    ("not_a_model", "expected a .keras checkpoint"),
    ("unfinished", "no finished fold"),
])
def test_bad_model_is_one_line_naming_the_file(runs, tiny_cohort, tmp_path, capsys, damage, words):
    run = tmp_path / "unet-focal"
    shutil.copytree(runs / "unet-focal", run)
    fold = run_layout.FoldPaths(run / "fold_0")
    named = {"keras": fold.checkpoint_last, "threshold": fold.threshold_json, "config": run / "config.json",
             "not_a_model": tmp_path, "unfinished": run}[damage]
    if damage == "keras":
        named.unlink()  # a hard link to checkpoint_best in the copy: replace, do not write through
        named.write_bytes((runs / "unet-focal/fold_0/checkpoint_last.keras").read_bytes()[:3000])
    elif damage in ("threshold", "config"):
        named.write_text('{"threshold": 0.4')
    elif damage == "unfinished":
        for _, p in run_layout.list_folds(run):
            p.done_marker.unlink()
    model = tmp_path / "nothing-here" if damage == "not_a_model" else run
    capsys.readouterr()
    assert _predict(model, tiny_cohort, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "out").exists()


def _member_copy(runs, tmp_path, name, edit=None):
    run = tmp_path / name
    shutil.copytree(runs / "unet-ce", run)
    if edit:
        config = json.loads((run / "config.json").read_text())
        edit(config)
        (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.mark.parametrize("what, edit, words", [
    ("cohort", lambda c: c.update(cohort="another cohort"), "different cohorts"),
    ("prepared", lambda c: c.update(prepared="/elsewhere/prepared"), "different prepared data"),
    ("splits", lambda c: c.update(splits_fingerprint="0123456789abcdef"), "different folds"),
])
def test_ensemble_refuses_members_of_different_data_or_folds(runs, tmp_path, what, edit, words):
    from islesbench.inference.ensemble import ensemble_runs

    other = _member_copy(runs, tmp_path, "unet-ce-" + what, edit)
    with pytest.raises(IslesbenchError, match=words) as err:
        ensemble_runs([runs / "unet-focal", other], tmp_path / "ens")
    assert str(runs / "unet-focal") in str(err.value) and str(other) in str(err.value)
    assert not (tmp_path / "ens").exists()


def test_ensemble_refuses_members_whose_cases_sit_in_other_folds(runs, tmp_path):
    from islesbench.inference.ensemble import ensemble_runs

    other = _member_copy(runs, tmp_path, "unet-ce-swapped")
    (other / "fold_0").rename(other / "fold_x")
    (other / "fold_1").rename(other / "fold_0")
    (other / "fold_x").rename(other / "fold_1")
    with pytest.raises(IslesbenchError, match="validated in other folds"):
        ensemble_runs([runs / "unet-focal", other], tmp_path / "ens")
