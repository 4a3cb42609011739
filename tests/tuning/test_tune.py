"""`islesbench tune` end to end on the tiny cohort: outputs, resume after a kill, more trials, --hparams."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from tune_helpers import read_csv, run, tune_command

from islesbench.runtime.child_env import child_env


def _kill_when(proc, path, timeout=240):
    """SIGKILL `proc` as soon as `path` exists; fail when it never appears."""
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the search ended before {path} appeared:\n{proc.stdout.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def search(tiny_prepared, tune_inputs, tmp_path_factory):
    """A search killed in trial 0's second fold, resumed, then extended from 1 to 2 trials."""
    out = tmp_path_factory.mktemp("search")
    argv1 = tune_command(tiny_prepared.root, out, tune_inputs, max_trials=1, epochs=2)
    proc = subprocess.Popen(argv1, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    fold0, fold1 = out / "trials" / "0" / "fold_0", out / "trials" / "0" / "fold_1"
    _kill_when(proc, fold1 / "backup" / "epoch_0001.keras")
    killed = {"fold0_done": (fold0 / "DONE").exists(), "fold1_done": (fold1 / "DONE").exists(),
              "fold0_done_mtime": (fold0 / "DONE").stat().st_mtime_ns}
    rc_resume, log_resume = run(argv1)
    argv2 = tune_command(tiny_prepared.root, out, tune_inputs, max_trials=2, epochs=2)
    rc_more, log_more = run(argv2)
    return {"out": out, "killed": killed, "rc_resume": rc_resume, "log_resume": log_resume,
            "rc_more": rc_more, "log_more": log_more}


def test_killed_trial_resumes_its_unfinished_fold(search):
    out, log = search["out"], search["log_resume"]
    assert search["rc_resume"] == 0, log
    assert search["killed"]["fold0_done"] and not search["killed"]["fold1_done"]
    assert "trial 0 fold 0: finished earlier, skipped" in log
    assert "resuming after epoch 1" in log  # fold 1 continued from its epoch file, not from zero
    fold1 = out / "trials" / "0" / "fold_1"
    history = read_csv(fold1 / "history.csv")
    assert [int(float(r["epoch"])) for r in history] == [0, 1]
    assert (fold1 / "DONE").exists() and not (fold1 / "backup").exists()
    assert (out / "trials" / "0" / "fold_0" / "DONE").stat().st_mtime_ns == search["killed"]["fold0_done_mtime"]


def test_more_trials_trains_only_the_new_one(search):
    out, log = search["out"], search["log_more"]
    assert search["rc_more"] == 0, log
    assert "== trial 0" not in log and "== trial 1 fold 0" in log and "== trial 1 fold 1" in log
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["0", "1"]
    rows = read_csv(out / "trials.csv")
    assert [r["trial_id"] for r in rows] == ["0", "1"]
    assert all(r["status"] == "COMPLETED" for r in rows)
    for r in rows:
        folds = [float(r["dice_fold_0"]), float(r["dice_fold_1"])]
        assert float(r["mean_val_dice"]) == pytest.approx(sum(folds) / 2)
        assert float(r["seconds"]) > 0 and r["worker"] == "tuner0"
        assert r["base_width"] in ("4", "8") and r["input_size"] in ("32", "48")


def test_best_hparams_and_plot(search):
    out = search["out"]
    best = json.loads((out / "best_hparams.json").read_text())
    rows = {r["trial_id"]: r for r in read_csv(out / "trials.csv")}
    assert set(best) >= {"config_overrides", "hparams", "score", "per_fold"}
    assert best["score"] == pytest.approx(max(float(r["mean_val_dice"]) for r in rows.values()))
    assert best["per_fold"] == pytest.approx([float(rows[best["trial_id"]][f"dice_fold_{k}"]) for k in (0, 1)])
    assert best["config_overrides"]["model"]["base_width"] == best["hparams"]["base_width"]
    assert best["config_overrides"]["loss"] == {"alpha": best["hparams"]["focal_alpha"],
                                                "gamma": best["hparams"]["focal_gamma"]}
    assert (out / "trials.png").read_bytes()[:4] == b"\x89PNG"


def test_other_settings_are_refused(search, tiny_prepared, tune_inputs):
    rc, log = run(tune_command(tiny_prepared.root, search["out"], tune_inputs, max_trials=2, epochs=3))
    assert rc == 2 and "other settings" in log and "epochs" in log


def test_run_applies_best_hparams(search, tiny_prepared, tune_inputs, tmp_path):
    best_file = search["out"] / "best_hparams.json"
    best = json.loads(best_file.read_text())
    rc, log = run(["python", "-m", "islesbench", "run", "--arch", "unet", "--loss", "focal",
                   "--data", str(tiny_prepared.root), "--hparams", str(best_file), "--config", str(tune_inputs[0]),
                   "--fold", "0", "--epochs", "1", "--out", str(tmp_path / "runs")])
    assert rc == 0, log
    # the search chose on the very folds the run scores: named and recorded as non-nested
    config = json.loads((tmp_path / "runs" / "unet-focal-tuned-nonnested" / "config.json").read_text())
    assert config["tuning"]["nested"] is False and config["tuning"]["source"] == str(best_file)
    o = best["config_overrides"]
    assert config["optimizer"]["learning_rate"] == o["optimizer"]["learning_rate"]
    assert config["optimizer"]["weight_decay"] == o["optimizer"]["weight_decay"]
    assert config["loss"]["alpha"] == o["loss"]["alpha"] and config["loss"]["gamma"] == o["loss"]["gamma"]
    assert config["model"]["base_width"] == o["model"]["base_width"] and config["model"]["depth"] == 2
    assert config["data"]["input_size"] == o["data"]["input_size"]
    assert config["data"]["augment_strength"] == o["data"]["augment_strength"]


@pytest.fixture(scope="module")
def nested(tiny_prepared, tune_inputs, tmp_path_factory):
    """A nested search for outer fold 0: 2 inner folds of fold 0's training patients, one trial."""
    out = tmp_path_factory.mktemp("nested")
    rc, log = run(tune_command(tiny_prepared.root, out, tune_inputs, max_trials=1, epochs=1,
                               extra=("--outer-fold", "0")))
    return {"out": out, "rc": rc, "log": log}


def test_nested_search_never_sees_the_outer_validation_cases(nested, tiny_prepared):
    assert nested["rc"] == 0, nested["log"]
    outer = tiny_prepared.splits()[0]
    best = json.loads((nested["out"] / "outer_fold_0" / "best_hparams.json").read_text())
    assert best["outer_fold"] == 0 and sorted(best["outer_val"]) == sorted(outer["val"])
    seen = set()
    for fold in (nested["out"] / "outer_fold_0" / "trials" / "0").glob("fold_*"):
        seen |= {r["case"] for r in read_csv(fold / "validation" / "metrics.csv")}
    assert seen and seen <= set(outer["train"])  # inner validation only ever used outer training cases
    assert seen == set(outer["train"])  # and every one of them once


def test_run_takes_nested_searches_per_outer_fold(nested, tiny_prepared, tune_inputs, tmp_path):
    argv = ["python", "-m", "islesbench", "run", "--arch", "unet", "--loss", "focal",
            "--data", str(tiny_prepared.root), "--hparams", str(nested["out"]), "--config", str(tune_inputs[0]),
            "--epochs", "1", "--out", str(tmp_path / "runs")]
    rc, log = run(argv + ["--fold", "1"])
    assert rc == 2 and "no nested search for outer fold(s) [1]" in log
    rc, log = run(argv + ["--fold", "0"])
    assert rc == 0, log
    run_dir = tmp_path / "runs" / "unet-focal-tuned"
    assert json.loads((run_dir / "config.json").read_text())["tuning"]["nested"] is True
    best = json.loads((nested["out"] / "outer_fold_0" / "best_hparams.json").read_text())
    fold_config = json.loads((run_dir / "fold_0" / "config.json").read_text())
    assert fold_config["model"]["base_width"] == best["config_overrides"]["model"]["base_width"]
    assert fold_config["data"]["input_size"] == best["config_overrides"]["data"]["input_size"]
