"""KerasTuner's distributed mode: a chief serving the oracle and workers on loopback, with timeouts."""

from __future__ import annotations

import subprocess
import time

import pytest
from tune_helpers import free_port, read_csv, run, tune_command

from islesbench.runtime.child_env import child_env


def _start(argv, role, port, log_path):
    env = child_env(KERASTUNER_TUNER_ID=role, KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(port))
    log = open(log_path, "w")
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def _wait(proc, timeout):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"process {proc.args[3:5]} did not end within {timeout} s")


def test_chief_without_workers_stops_with_a_message(tiny_prepared, tune_inputs, tmp_path):
    argv = tune_command(tiny_prepared.root, tmp_path / "search", tune_inputs, max_trials=2,
                        extra=["--worker-timeout", "3"])
    t0 = time.time()
    rc, log = run(argv, timeout=120, KERASTUNER_TUNER_ID="chief", KERASTUNER_ORACLE_IP="127.0.0.1",
                  KERASTUNER_ORACLE_PORT=str(free_port()))
    assert rc == 2, log
    assert "heard from no worker" in log and "--worker-timeout 3" in log
    assert time.time() - t0 < 90


@pytest.mark.slow
def test_chief_and_two_workers_share_the_trials(tiny_prepared, tune_inputs, tmp_path):
    out, port = tmp_path / "search", free_port()
    argv = tune_command(tiny_prepared.root, out, tune_inputs, max_trials=4, extra=["--worker-timeout", "60"])
    out.mkdir()
    chief = _start(argv, "chief", port, tmp_path / "chief.log")
    workers = [_start(argv, f"tuner{i}", port, tmp_path / f"tuner{i}.log") for i in range(2)]
    for i, w in enumerate(workers):
        assert _wait(w, 400) == 0, (tmp_path / f"tuner{i}.log").read_text()
    assert _wait(chief, 120) == 0, (tmp_path / "chief.log").read_text()
    rows = read_csv(out / "trials.csv")
    assert len(rows) == 4 and all(r["status"] == "COMPLETED" for r in rows)
    assert {r["worker"] for r in rows} == {"tuner0", "tuner1"}  # both workers ran trials
    assert (out / "best_hparams.json").is_file()
    for r in rows:  # each trial's folds were trained by the worker that ran it, in the shared OUT
        assert (out / "trials" / r["trial_id"] / "fold_1" / "DONE").is_file()


@pytest.mark.slow
def test_dead_worker_trial_is_handed_to_another(tiny_prepared, tune_inputs, tmp_path):
    out, port = tmp_path / "search", free_port()
    argv = tune_command(tiny_prepared.root, out, tune_inputs, max_trials=1, epochs=2,
                        extra=["--worker-timeout", "20"])
    out.mkdir()
    chief = _start(argv, "chief", port, tmp_path / "chief.log")
    doomed = _start(argv, "tuner0", port, tmp_path / "tuner0.log")
    marker = out / "trials" / "0" / "fold_0" / "backup" / "epoch_0001.keras"
    t0 = time.time()
    while not marker.exists():
        assert doomed.poll() is None and time.time() - t0 < 240, (tmp_path / "tuner0.log").read_text()
        time.sleep(0.05)
    doomed.kill()
    doomed.wait()
    t0 = time.time()
    while "presumed dead" not in (tmp_path / "chief.log").read_text():  # the chief notices the silence
        assert time.time() - t0 < 60, (tmp_path / "chief.log").read_text()
        time.sleep(0.2)
    rescuer = _start(argv, "tuner1", port, tmp_path / "tuner1.log")
    assert _wait(rescuer, 300) == 0, (tmp_path / "tuner1.log").read_text()
    assert _wait(chief, 120) == 0, (tmp_path / "chief.log").read_text()
    rows = read_csv(out / "trials.csv")
    assert [r["status"] for r in rows] == ["COMPLETED"] and rows[0]["worker"] == "tuner0;tuner1"
    assert "resuming after epoch 1" in (tmp_path / "tuner1.log").read_text()
