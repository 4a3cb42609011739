"""`islesbench tune` end to end on the tiny cohort: outputs, resume after a kill, more trials, --hparams."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tune_helpers import quiet_env, read_csv, run, tune_command


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
    proc = subprocess.Popen(argv1, env=quiet_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
    config = json.loads((tmp_path / "runs" / "unet-focal" / "config.json").read_text())
    o = best["config_overrides"]
    assert config["optimizer"]["learning_rate"] == o["optimizer"]["learning_rate"]
    assert config["optimizer"]["weight_decay"] == o["optimizer"]["weight_decay"]
    assert config["loss"]["alpha"] == o["loss"]["alpha"] and config["loss"]["gamma"] == o["loss"]["gamma"]
    assert config["model"]["base_width"] == o["model"]["base_width"] and config["model"]["depth"] == 2
    assert config["data"]["input_size"] == o["data"]["input_size"]
    assert config["data"]["augment_strength"] == o["data"]["augment_strength"]
