"""`islesbench run`: the results layout, skip/force, the threshold baseline, config identity, predict, ensemble."""

import json

import numpy as np
import pytest

from islesbench import layouts
from islesbench.cli import main
from islesbench.config import apply_overrides, profile_config
from islesbench.errors import IslesbenchError
from islesbench.storage import run_layout
from islesbench.training.cross_validation import run_configuration

TINY = {"model": {"arch": "unet", "base_width": 4, "depth": 3}, "data": {"input_size": 48},
        "train": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 4}}


def tiny_config(**overrides):
    config = apply_overrides(profile_config("quick"), TINY)
    return apply_overrides(config, overrides)


@pytest.fixture(scope="module")
def unet_run(tiny_prepared, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    run_configuration(tiny_config(), tiny_prepared, runs)
    return runs


def test_results_layout_is_complete(unet_run, tiny_prepared):
    run = run_layout.run_dir(unet_run, "unet-focal")
    assert json.loads((run / "config.json").read_text())["cohort"].startswith("synthetic")
    for k, fold in enumerate(tiny_prepared.splits()):
        p = run_layout.fold_paths(unet_run, "unet-focal", k)
        for f in (p.config, p.history_csv, p.progress_png, p.checkpoint_best, p.checkpoint_last,
                  p.threshold_json, p.metrics_csv, p.summary_json, p.done_marker):
            assert f.is_file(), f
        assert p.tensorboard_dir.is_dir() and not p.backup_dir.exists()
        assert json.loads(p.config.read_text())["fold"] == k
        lines = p.history_csv.read_text().splitlines()
        assert lines[0].startswith("epoch,") and len(lines) == 3
        for case_id in fold["val"]:
            entry = tiny_prepared.cases[case_id]
            data, affine, _ = layouts.read_nifti(p.mask_path(case_id))
            assert data.shape == tuple(entry["shape"]) and np.allclose(affine, entry["affine"], atol=1e-4)
            assert set(np.unique(data)) <= {0.0, 1.0}
            prob, _, _ = layouts.read_nifti(p.probability_path(case_id))
            assert prob.min() >= 0 and prob.max() <= 1
        assert not list(p.root.rglob(".*.tmp-*"))


def test_finished_folds_are_skipped_and_force_reruns(unet_run, tiny_prepared, capsys):
    p = run_layout.fold_paths(unet_run, "unet-focal", 0)
    stamp = p.checkpoint_last.stat().st_mtime_ns
    run_configuration(tiny_config(), tiny_prepared, unet_run, folds=[0])
    assert "finished earlier, skipped" in capsys.readouterr().out
    assert p.checkpoint_last.stat().st_mtime_ns == stamp


def test_a_different_config_in_the_same_folder_is_refused(unet_run, tiny_prepared):
    with pytest.raises(IslesbenchError, match="different configuration.*train"):
        run_configuration(tiny_config(train={"epochs": 3}), tiny_prepared, unet_run, folds=[0])


def test_every_run_records_its_training_patients_and_older_runs_without_them_resume(unet_run, tiny_prepared):
    config_file = run_layout.run_dir(unet_run, "unet-focal") / "config.json"
    recorded = json.loads(config_file.read_text())
    patient_of = tiny_prepared.patient_of()
    assert recorded["train_patients"] == {str(k): len({patient_of.get(c, c) for c in fold["train"]})
                                          for k, fold in enumerate(tiny_prepared.splits())}
    del recorded["train_patients"]  # a full-data run made before the field was recorded
    config_file.write_text(json.dumps(recorded))
    run_configuration(tiny_config(), tiny_prepared, unet_run, folds=[0])  # no "different configuration"
    assert "train_patients" in json.loads(config_file.read_text())


def test_a_training_fraction_trains_on_whole_patients_of_the_fold(tiny_prepared, tmp_path):
    # steps_per_epoch None (the paper profile): the fraction trains as many steps as the whole fold would.
    config = tiny_config(data={"train_fraction": 0.5}, train={"steps_per_epoch": None, "epochs": 1, "batch_size": 4})
    run_configuration(config, tiny_prepared, tmp_path, folds=[0])
    patient_of = tiny_prepared.patient_of()
    fold_train = tiny_prepared.splits()[0]["train"]
    used = json.loads(run_layout.fold_paths(tmp_path, "unet-focal-frac0.5", 0).config.read_text())["train_cases"]
    patients = {patient_of.get(c, c) for c in used}
    assert used and set(used) < set(fold_train)
    assert set(used) == {c for c in fold_train if patient_of.get(c, c) in patients}  # a patient's slabs go together
    assert len(patients) == -(-len({patient_of.get(c, c) for c in fold_train}) // 2)  # ceil(0.5 n)
    recorded = json.loads((run_layout.run_dir(tmp_path, "unet-focal-frac0.5") / "config.json").read_text())
    assert recorded["train_patients"]["0"] == len(patients) and recorded["data"]["train_fraction"] == 0.5
    assert recorded["train"]["fraction_steps"] == "matched"
    facts = json.loads(run_layout.fold_paths(tmp_path, "unet-focal-frac0.5", 0).training_facts.read_text())
    whole_fold = -(-sum(tiny_prepared.cases[c]["num_slices"] for c in fold_train) // 4)
    assert facts["optimizer_steps"] == facts["steps_per_epoch"] == whole_fold
    assert facts["steps_basis"] == "one pass over the fold's training cases"


def test_each_fold_records_what_its_training_resolved_to(unet_run, tiny_prepared):
    for k, _ in enumerate(tiny_prepared.splits()):
        facts = json.loads(run_layout.fold_paths(unet_run, "unet-focal", k).training_facts.read_text())
        assert facts["steps_per_epoch"] == 3 and facts["optimizer_steps"] == 6 and facts["steps_basis"] == "configured"
        assert facts["replicas"] == 1 and facts["global_batch_size"] == 4 and facts["slices_per_step"] == 4
        drawn = facts["drawn"]  # every batch fit drew (6), and the few prefetched ahead of it
        assert 6 <= drawn["batches"] <= 12 and drawn["samples"] == drawn["slices"] == 4 * drawn["batches"]
        assert 0 < drawn["lesion_voxel_share"] < drawn["lesion_sample_share"] <= 1


def test_threshold_baseline_in_the_same_layout(tiny_prepared, tmp_path):
    run_configuration(tiny_config(model={"arch": "threshold"}), tiny_prepared, tmp_path)
    rows = []
    for k, _ in enumerate(tiny_prepared.splits()):
        p = run_layout.fold_paths(tmp_path, "threshold", k)
        assert p.is_done() and p.metrics_csv.is_file()
        rows += p.metrics_csv.read_text().splitlines()[1:]
    assert len(rows) == len(tiny_prepared.case_ids("TRAINING"))


def test_cli_rejects_bad_input_with_one_line(tmp_path, capsys):
    assert main(["run", "--arch", "unet", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    assert main(["run", "--arch", "unet", "--pretrained", "--data", str(tmp_path)]) == 2
    assert "pspnet only" in capsys.readouterr().err


def test_predict_writes_masks_in_the_input_geometry(unet_run, tiny_cohort, tmp_path):
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(unet_run / "unet-focal"), "--input", str(tiny_cohort / "TESTING"),
                 "--out", str(out), "--probabilities"]) == 0
    case = layouts.discover_cohort(tiny_cohort / "TESTING")[0]
    loaded = layouts.load_case(case, with_mask=False)
    mask, affine, _ = layouts.read_nifti(out / f"{case.case_id}.nii.gz")
    assert mask.shape == loaded.shape and np.allclose(affine, loaded.affine, atol=1e-5)
    assert (out / f"{case.case_id}_prob.nii.gz").is_file()
    single = tmp_path / "one.nii.gz"
    ckpt = run_layout.fold_paths(unet_run, "unet-focal", 0).checkpoint_best
    assert main(["predict", "--model", str(ckpt), "--input", str(case.directory), "--out", str(single)]) == 0
    assert layouts.read_nifti(single)[0].shape == loaded.shape


def test_ensemble_of_runs_is_an_ordinary_run(unet_run, tiny_prepared, tmp_path):
    from islesbench.evaluation.files import read_case_metrics
    from islesbench.inference.ensemble import ensemble_runs

    run_configuration(tiny_config(loss={"name": "ce"}), tiny_prepared, unet_run)
    out = unet_run / "ensemble"
    summary = ensemble_runs([unet_run / "unet-focal", unet_run / "unet-ce"], out)
    folds = run_layout.list_folds(out)
    assert len(folds) == 2 and all(p.is_done() for _, p in folds)
    case = tiny_prepared.splits()[0]["val"][0]
    a = layouts.read_nifti(run_layout.fold_paths(unet_run, "unet-focal", 0).probability_path(case))[0]
    b = layouts.read_nifti(run_layout.fold_paths(unet_run, "unet-ce", 0).probability_path(case))[0]
    mean = layouts.read_nifti(folds[0][1].probability_path(case))[0]
    np.testing.assert_allclose(mean, (a + b) / 2, atol=1e-6)
    assert summary["metrics"]["dice"]["n"] == len(tiny_prepared.case_ids("TRAINING"))
    assert read_case_metrics(folds[0][1].metrics_csv)
    # the members' folds travel with it: an imported row on the same folds pairs with the ensemble
    member = json.loads((unet_run / "unet-focal" / "config.json").read_text())["splits_fingerprint"]
    assert member and json.loads((out / "config.json").read_text())["splits_fingerprint"] == member


def test_provenance_records_commit_command_and_versions():
    from islesbench.storage.provenance import provenance

    record = provenance()
    assert record["versions"]["numpy"] and record["versions"]["tensorflow"]
    assert record["commit"] is None or len(record["commit"]) == 40
    assert record["machine"]["cpus"] >= 1


def test_predict_computes_in_the_trained_precision_unless_told(unet_run, tiny_cohort, tmp_path):
    from islesbench.inference.predictor import Predictor
    from islesbench.runtime import precision

    run = unet_run / "unet-focal"
    trained = json.loads((run / "config.json").read_text())["train"]["precision"]
    assert trained in ("float32", "mixed_bfloat16")  # auto was stored resolved
    predictor = Predictor.load(run)
    assert {precision.model_precision(m) for m in predictor.models} == {trained}
    other = "float32" if trained != "float32" else "mixed_bfloat16"
    predictor.set_precision(other)
    assert {precision.model_precision(m) for m in predictor.models} == {other}
    outs = {}
    for name in (trained, other):
        out = tmp_path / name / "case.nii.gz"
        assert main(["predict", "--model", str(run), "--input", str(layouts.discover_cohort(tiny_cohort / "TESTING")[0]
                     .directory), "--out", str(out), "--probabilities", "--precision", name]) == 0
        outs[name] = layouts.read_nifti(out.with_name("case_prob.nii.gz"))[0]
    assert np.max(np.abs(outs[trained] - outs[other])) < 0.05  # the same model, rounded differently


def test_progress_plot_drawn_after_the_first_and_last_epochs_of_short_epochs(tiny_prepared, tmp_path, monkeypatch):
    from islesbench.training import callbacks

    drawn = []
    monkeypatch.setattr(callbacks, "plot_progress", lambda rows, path: drawn.append(len(rows)))
    run_configuration(tiny_config(train={"epochs": 4}), tiny_prepared, tmp_path, folds=[0])
    assert drawn == [1, 4]  # epochs far shorter than PLOT_INTERVAL_S: the first and the last only
    monkeypatch.setattr(callbacks, "PLOT_INTERVAL_S", 0.0)
    drawn.clear()
    run_configuration(tiny_config(train={"epochs": 3}), tiny_prepared, tmp_path / "again", folds=[0])
    assert drawn == [1, 2, 3]


def _fake_provenance(commit):
    return lambda: {"commit": commit, "tree_modified": False, "diff_sha256": None, "versions": {"numpy": "1"},
                    "machine": {"cpu_model": "test CPU", "cpu_flags": []}}


def test_each_fold_records_what_trained_it_and_a_later_invocation_does_not_rewrite_it(tiny_prepared, tmp_path,
                                                                                      monkeypatch):
    from islesbench.storage import provenance

    config = tiny_config(model={"arch": "threshold"})
    monkeypatch.setattr(provenance, "provenance", _fake_provenance("a" * 40))
    run_configuration(config, tiny_prepared, tmp_path, folds=[0])
    monkeypatch.setattr(provenance, "provenance", _fake_provenance("b" * 40))
    run_configuration(config, tiny_prepared, tmp_path)  # fold 0 skipped as finished, fold 1 trained now
    run = run_layout.run_dir(tmp_path, "threshold")
    folds = [json.loads(run_layout.fold_paths(tmp_path, "threshold", k).config.read_text()) for k in (0, 1)]
    assert [f["provenance"]["commit"] for f in folds] == ["a" * 40, "b" * 40]
    # the run's own config.json, rewritten by every invocation, names no commit as the one that trained it
    assert "provenance" not in json.loads((run / "config.json").read_text())
    assert folds[1]["provenance"]["machine"]["devices"] == ["CPU"]  # the rCBF rule trains nothing, on the CPU
    assert "threads" in folds[1]["provenance"]["machine"]


def test_a_resumed_fold_keeps_who_trained_its_first_epochs(tmp_path, monkeypatch):
    from islesbench.storage import provenance
    from islesbench.training.cross_validation import fold_provenance

    config = tiny_config(model={"arch": "threshold"})
    paths = run_layout.fold_paths(tmp_path, "threshold", 0)
    run_layout.prepare_fold_dir(paths)
    config.save(paths.config, fold=0, provenance=_fake_provenance("a" * 40)())
    monkeypatch.setattr(provenance, "provenance", _fake_provenance("b" * 40))
    assert "provenance_earlier" not in fold_provenance(config, paths)  # no epoch trained before: nothing to keep
    paths.backup_dir.mkdir()
    (paths.backup_dir / "epoch_0001.keras").write_bytes(b"")
    entries = fold_provenance(config, paths)
    assert entries["provenance"]["commit"] == "b" * 40
    assert [r["commit"] for r in entries["provenance_earlier"]] == ["a" * 40]


def test_a_run_keeps_the_patient_map_it_trained_with(tiny_prepared, tmp_path):
    run_configuration(tiny_config(model={"arch": "threshold"}), tiny_prepared, tmp_path, folds=[0])
    kept = json.loads((run_layout.run_dir(tmp_path, "threshold") / "patients.json").read_text())
    assert kept["patients"] == tiny_prepared.patients() and kept["copied_from"] == str(tiny_prepared.paths.patients)


@pytest.mark.parametrize("arch, width, asked, precision_name, stored", [
    ("pspnet", 1.0, "auto", "float32", "native"), ("pspnet", 0.125, "matmul", "float32", "matmul"),
    ("pspnet", 1.0, "native", "mixed_bfloat16", "native"), ("pspnet", 0.125, "auto", "mixed_bfloat16", "native"),
    ("unet", 1.0, "auto", "mixed_bfloat16", "auto"),
])
def test_pspnet_weight_gradients_are_stored_resolved(arch, width, asked, precision_name, stored):
    """As the precision: config.json says which weight gradients ran (islesbench/models/matmul_gradients.py)."""
    from islesbench.training.cross_validation import check_configuration

    config = apply_overrides(profile_config("quick", arch), {"model": {"weight_gradients": asked, "encoder_width": width},
                                                             "train": {"precision": precision_name}})
    assert check_configuration(config).model.weight_gradients == stored
