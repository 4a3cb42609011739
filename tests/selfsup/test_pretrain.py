"""`islesbench pretrain`: leak-free per-fold pretraining, the round trip into PSPNet, resume after a kill, errors."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from subprocess_harness import KILL_AT_HISTORY_WRITE

from islesbench.cli import main
from islesbench.config import apply_overrides, profile_config
from islesbench.data_prep.prepare import resolve_prepared
from islesbench.errors import IslesbenchError
from islesbench.runtime.child_env import child_env
from islesbench.selfsup.pretrain import pretrain, pretrain_config, resolve_sources
from islesbench.storage import pretrain_records, run_layout

TINY = {"input_size": 48, "epochs": 2, "steps_per_epoch": 2, "batch_size": 4}


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    """Another synthetic cohort (another seed, so another source) prepared at 48²: the unlabelled data."""
    from islesbench.data_prep.prepare import prepare_cohort
    from islesbench.data_prep.synth import synthesize_cohort

    root = tmp_path_factory.mktemp("unlabelled")
    synthesize_cohort(root / "raw", cases=4, seed=11, size=64)
    return prepare_cohort(root / "raw", root / "prepared", folds=2, seed=0, grid=48)


@pytest.fixture(scope="module")
def pretrain_reads():
    """fold -> the slice files given to every restoration_dataset that fold's pretraining built."""
    return {}


@pytest.fixture(scope="module")
def per_fold(tiny_prepared, unlabelled, tmp_path_factory, pretrain_reads):
    """Fold 0's and fold 1's pretraining on the fine-tuning cohort plus the unlabelled one."""
    from islesbench.data import pipeline

    out = tmp_path_factory.mktemp("pretrain") / "selfsup"
    config = pretrain_config("quick", [TINY])
    sources = resolve_sources([str(tiny_prepared.root), str(unlabelled.root)], out, prepare=resolve_prepared)
    real = pipeline.restoration_dataset
    for k in (0, 1):
        reads = pretrain_reads.setdefault(k, [])

        def recording(files, *args, **kwargs):
            files = list(files)
            reads.append(files)
            return real(files, *args, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pipeline, "restoration_dataset", recording)
            pretrain(config, sources, out, exclude_fold=k, folds_of=tiny_prepared, verbose=0)
    return out


def test_fold_k_never_reads_fold_k_validation_patients(per_fold, pretrain_reads, tiny_prepared, unlabelled):
    from pathlib import Path

    splits = tiny_prepared.splits()
    for k in (0, 1):
        # what the pipelines were given, not what the record says they were given
        read = {Path(f).resolve() for files in pretrain_reads[k] for f in files}
        assert pretrain_reads[k] and read
        assert not read & {Path(f).resolve() for f in tiny_prepared.slice_files(splits[k]["val"])}
        assert {Path(f).resolve() for f in tiny_prepared.slice_files(splits[1 - k]["val"])} <= read
        assert {Path(f).resolve() for f in unlabelled.slice_files(unlabelled.case_ids(None))} <= read
    patient_of = tiny_prepared.patients()
    for k in (0, 1):
        record = pretrain_records.read_record(per_fold / f"fold_{k}.keras")
        fine_tune, other = record["cohorts"]
        val_patients = {patient_of.get(c, c) for c in splits[k]["val"]}
        assert not {patient_of.get(c, c) for c in fine_tune["cases"]} & val_patients
        assert set(fine_tune["cases"]) | set(fine_tune["excluded_cases"]) == set(tiny_prepared.case_ids(None))
        assert sorted(fine_tune["excluded_cases"]) == sorted(record["excluded"]["cases"])
        assert sorted(record["excluded"]["patients"]) == sorted(val_patients)
        # the other cohort shares case names but not its source: nothing of it is left out
        assert other["excluded_cases"] == [] and other["n_cases"] == len(unlabelled.case_ids(None))
        state = pretrain_records.PretrainPaths(per_fold).state(k)
        assert state.is_done() and state.progress_png.is_file() and state.tensorboard_dir.is_dir()
        assert len(state.history_csv.read_text().splitlines()) == 1 + TINY["epochs"]


def test_a_fresh_pretraining_decodes_the_data_twice(per_fold, pretrain_reads):
    # every pipeline decodes all slices to fill its shuffle buffer: one fixed batch (the output prior and the
    # preview) and the training stream
    assert [len(pretrain_reads[k]) for k in (0, 1)] == [2, 2]


def test_round_trip_pspnet_encoder_equals_the_pretrained_one(per_fold, tiny_prepared, tmp_path, monkeypatch):
    import keras

    from islesbench.models import build_from_config, encoder_layers
    from islesbench.training.cross_validation import run_configuration

    weights = per_fold / "fold_0.keras"
    source = keras.saving.load_model(weights, compile=False)
    config = apply_overrides(profile_config("quick", "pspnet", str(per_fold)),
                             {"data": {"input_size": 48}, "train": {"epochs": 1, "steps_per_epoch": 1, "batch_size": 4}})
    assert config.model.encoder_width == 0.125 and config.name == "pspnet-selfsup-focal"
    model = build_from_config(apply_overrides(config.model, {"pretrained": str(weights)}), 5, 48)
    checked = 0
    for layer in encoder_layers(model):
        for got, want in zip(layer.get_weights(), source.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(got, want, err_msg=layer.name)
        checked += bool(layer.weights)
    assert checked == 106
    # `run --pretrained DIR`: fold k from fold_<k>.keras (never a model kept from another fold: fold 0's
    # encoder read fold 1's validation cases), what it was pretrained on in config.json
    from islesbench.models import pretrained as pretrained_mod

    loaded = []
    real = pretrained_mod.load_encoder_weights
    monkeypatch.setattr(pretrained_mod, "load_encoder_weights",
                        lambda model, source: loaded.append(source) or real(model, source))
    runs = tmp_path / "runs"
    run_configuration(config, tiny_prepared, runs, folds=[0, 1])
    assert loaded == [str(weights), str(per_fold / "fold_1.keras")]
    root = json.loads((runs / config.name / "config.json").read_text())
    fold = json.loads(run_layout.fold_paths(runs, config.name, 0).config.read_text())
    assert fold["name"] == config.name and fold["model"]["pretrained"] == str(weights)
    entry = root["pretraining"]["folds"]["0"]
    assert root["pretraining"]["per_fold"] and entry["method"] == "models-genesis"
    assert entry["saw_validation_cases"] == 0 and entry["excluded"]["fold"] == 0
    # every case of the fine-tuning cohort but fold 0's validation ones (its TESTING case included), all the others
    n_fine_tune = len(tiny_prepared.case_ids(None)) - len(tiny_prepared.splits()[0]["val"])
    assert [c["n_cases"] for c in entry["cohorts"]] == [n_fine_tune, 4]


def test_restoration_outputs_start_at_the_channel_prior():
    from islesbench.models.restoration import build_restoration_model

    prior = [0.2, 0.1, 0.05, 0.03, 0.15]  # all far from the 0.5 a zero bias starts at
    model = build_restoration_model(5, 48, 0.125, output_prior=prior)
    out = np.asarray(model(np.random.default_rng(0).normal(size=(2, 48, 48, 5)).astype("float32"), training=False))
    mean = out.mean(axis=(0, 1, 2))
    # random decoder weights scatter the logits a little; every channel is near its prior, none near 0.5
    assert (np.abs(mean - prior) < np.abs(mean - 0.5)).all() and np.abs(mean - prior).mean() < 0.04, mean


def test_optimizer_is_built_before_the_first_step():
    import keras

    from islesbench.selfsup.pretrain import build_compiled_restoration_model

    config = pretrain_config("quick", [TINY])
    model = build_compiled_restoration_model(config, 5, output_prior=[0.1] * 5)
    # built: the first train step does not create variables (a tf.function that does is traced twice)
    assert model.optimizer.built
    optimizer = model.optimizer.get_config()
    schedule = optimizer["learning_rate"]["config"]
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert optimizer["weight_decay"] == pytest.approx(config.weight_decay)
    assert schedule["initial_learning_rate"] == pytest.approx(config.learning_rate) and schedule["alpha"] == 0.01
    assert schedule["decay_steps"] == config.epochs * config.steps_per_epoch and not schedule["warmup_steps"]


def test_a_fold_file_that_saw_its_validation_cases_is_refused(per_fold, tiny_prepared, tmp_path):
    from islesbench.training.cross_validation import run_configuration

    swapped = tmp_path / "swapped"
    swapped.mkdir()
    shutil.copy(per_fold / "fold_0.keras", swapped / "fold_1.keras")  # fold 0's encoder read fold 1's val cases
    shutil.copytree(per_fold / "fold_0", swapped / "fold_1")
    config = apply_overrides(profile_config("quick", "pspnet", str(swapped)), {"data": {"input_size": 48}})
    with pytest.raises(IslesbenchError, match="read .* of fold 1's validation cases"):
        run_configuration(config, tiny_prepared, tmp_path / "runs", folds=[1])
    with pytest.raises(IslesbenchError, match=r"no fold_<k>.keras for fold\(s\) \[0\]"):
        run_configuration(config, tiny_prepared, tmp_path / "runs", folds=[0])


def _history(path):
    import csv

    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in ("time", "seconds")} for r in csv.DictReader(f)]


def test_resume_after_kill_trains_what_an_uninterrupted_run_trains(tiny_prepared, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**TINY, "epochs": 5}))
    args = ["pretrain", "--data", str(tiny_prepared.root), "--exclude-fold", "1", "--config", str(cfg)]
    killed = subprocess.run([sys.executable, "-c", KILL_AT_HISTORY_WRITE, *args, "--out", str(tmp_path / "a")],
                            env=child_env(), capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    state = pretrain_records.PretrainPaths(tmp_path / "a").state(1)
    assert (state.backup_dir / "epoch_0003.keras").is_file() and not state.is_done()
    resumed = subprocess.run([sys.executable, "-m", "islesbench", *args, "--out", str(tmp_path / "a")], env=child_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after epoch 3" in resumed.stdout
    whole = subprocess.run([sys.executable, "-m", "islesbench", *args, "--out", str(tmp_path / "b")], env=child_env(),
                           capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]
    reference = pretrain_records.PretrainPaths(tmp_path / "b").state(1)
    assert [int(r["epoch"]) for r in _history(state.history_csv)] == list(range(5))
    assert _history(state.history_csv) == _history(reference.history_csv)
    assert (tmp_path / "a" / "fold_1.keras").is_file() and not state.backup_dir.exists()
    assert not list((tmp_path / "a").rglob(".*.tmp-*"))
    again = subprocess.run([sys.executable, "-m", "islesbench", *args, "--out", str(tmp_path / "a")], env=child_env(),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "finished earlier" in again.stdout


def test_bad_input_is_one_line(tiny_prepared, tiny_cohort, per_fold, tmp_path, capsys):
    from islesbench.data_prep.prepare import prepare_cohort

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(TINY))
    base = ["pretrain", "--config", str(cfg), "--out", str(tmp_path / "out")]
    two_channels = prepare_cohort(tiny_cohort, tmp_path / "two", folds=2, grid=48, modalities=("CT_CBF", "CT"))
    cases = [
        (["--data", str(tmp_path / "missing")], "does not exist"),
        (["--data", str(tiny_prepared.root), "--exclude-fold", "7"], "has 2 folds"),
        (["--data", str(tiny_prepared.root), "--exclude-fold", "x"], "fold number or `all`"),
        (["--data", str(tiny_prepared.root), "--data", str(two_channels.root)], "channels CT_CBF, CT differ"),
        (["--data", str(tiny_prepared.root), "--epochs", "0"], "epochs, steps_per_epoch and batch_size"),
        (["--data", str(two_channels.root), "--data", str(tiny_prepared.root), "--exclude-fold", "0"],
         "name the fine-tuning cohort whose fold is left out with --folds-of"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) <= 3, err
    # another configuration into a finished folder is refused, naming what differs
    other = ["pretrain", "--data", str(tiny_prepared.root), "--exclude-fold", "0", "--out", str(per_fold),
             "--config", str(cfg), "--seed", "5"]
    assert main(other) == 2
    assert "differs in: cohorts, config" in capsys.readouterr().err
