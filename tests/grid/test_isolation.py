"""Each benchmark cell in its own child process: statuses from how the child ended, crashes isolated and
resumed, `--jobs`, the thread and GPU share of a child, the progress line, the exit status."""

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from cell_children import FAKE_CHILD
from test_grid import fake_ensemble, fake_prepare

from islesbench.commands import benchmark as benchmark_command
from islesbench.grid import cell_process, runner
from islesbench.grid.grid_file import benchmark_record_path, grid_from_dict
from islesbench.grid.progress import Progress
from islesbench.reports.results_reader import read_run
from islesbench.runtime import child_env


@pytest.fixture
def fake_child(tmp_path):
    script = tmp_path / "fake_child.py"
    script.write_text(FAKE_CHILD)
    return [sys.executable, str(script)]


def _events(runs):
    return [json.loads(line) for line in (runs / "children.jsonl").read_text().splitlines()]


GRID = {"cells": [{"arch": "pspnet", "pretrained": "imagenet"}, {"arch": "pspnet"}, {"arch": "unet"},
                  {"arch": "vnet"}, {"arch": "threshold"}], "ensemble": {"top_k": 2}}


def test_a_crashed_cell_is_recorded_the_grid_goes_on_and_the_same_call_resumes_it(tmp_path, fake_child, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("FAKE_CELLS", json.dumps({"pspnet-imagenet-focal": "error", "unet-focal": "segv",
                                                 "vnet-focal": "exit1"}))
    ensembled = []

    def ensemble(run_dirs, out_dir, force=False, folds=None, record=None):
        ensembled.append([e["event"] for e in _events(runs)])
        return fake_ensemble(run_dirs, out_dir)

    record = runner.run_benchmark(grid_from_dict(GRID), "/d", runs, "quick", num_folds=2, jobs=2,
                                  child_command=fake_child, gpus=[], prepare=fake_prepare, read_run=read_run,
                                  ensemble_runs=ensemble)
    cells = {c["name"]: c for c in record["cells"]}
    assert [c["name"] for c in record["cells"]] == ["pspnet-imagenet-focal", "pspnet-scratch-focal", "unet-focal",
                                                    "vnet-focal", "threshold", "ensemble-top2"]  # grid order
    crashed = cells["unet-focal"]
    assert crashed["status"] == "crashed" and crashed["signal"] == {"name": "SIGSEGV", "number": 11}
    assert crashed["command"] == (f"islesbench run --arch unet --loss focal --data /d --profile quick --out {runs} "
                                  "--folds 2 --fold all")
    assert crashed["log"] == str(runs / "logs" / "unet-focal.log")
    assert "SIGSEGV" in crashed["reason"] and crashed["log"] in crashed["reason"]
    log = (runs / "logs" / "unet-focal.log").read_text()
    assert "Epoch 1/1 - fake keras line" in log and crashed["command"] in log
    failed = cells["vnet-focal"]
    assert failed["status"] == "crashed" and failed["exit_status"] == 1 and "RuntimeError: a bug" in failed["reason"]
    assert "signal" not in failed
    offline = cells["pspnet-imagenet-focal"]
    assert offline["status"] == "not run"
    assert offline["reason"] == "ImageNet weights for the ResNet-50 encoder are not available offline"
    for name in ("pspnet-scratch-focal", "threshold"):
        assert cells[name]["status"] == "done" and cells[name]["folds_done"] == [0, 1]
    assert cells["ensemble-top2"]["status"] == "not run"  # one finished learned configuration
    assert json.loads(benchmark_record_path(runs).read_text())["cells"] == json.loads(json.dumps(record["cells"]))

    # The same call again: the crashed cells run (their logs appended), the ensemble after all of them.
    monkeypatch.setenv("FAKE_CELLS", json.dumps({"pspnet-imagenet-focal": "error"}))
    again = runner.run_benchmark(grid_from_dict(GRID), "/d", runs, "quick", num_folds=2, jobs=2,
                                 child_command=fake_child, gpus=[], prepare=fake_prepare, read_run=read_run,
                                 ensemble_runs=ensemble)
    cells = {c["name"]: c for c in again["cells"]}
    assert cells["unet-focal"]["status"] == "done" and cells["unet-focal"]["folds_trained"] == 2
    assert cells["vnet-focal"]["status"] == "done" and cells["ensemble-top2"]["status"] == "done"
    assert (runs / "logs" / "unet-focal.log").read_text().count("=== exit status") == 2
    assert ensembled[-1] == [e["event"] for e in _events(runs)]  # no child started or ended after the ensemble


def test_jobs_runs_that_many_cells_at_once_with_their_share_of_threads_and_one_gpu_each(tmp_path, fake_child,
                                                                                      monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("FAKE_CELLS", json.dumps({n: "sleep:1.5" for n in ("pspnet-scratch-focal", "unet-focal",
                                                                          "vnet-focal", "threshold")}))
    grid = grid_from_dict({"cells": GRID["cells"][1:], "ensemble": None})
    record = runner.run_benchmark(grid, "/d", runs, "quick", num_folds=2, jobs=2, child_command=fake_child,
                                  gpus=["3", "5"], prepare=fake_prepare, read_run=read_run)
    assert all(c["status"] == "done" for c in record["cells"]) and record["jobs"] == 2
    events = _events(runs)
    spans = {e["name"]: [e["t"], None] for e in events if e["event"] == "start"}
    for e in events:
        if e["event"] == "end":
            spans[e["name"]][1] = e["t"]
    at_once = max(sum(1 for s, t in spans.values() if s <= moment < t) for moment, _ in spans.values())
    assert at_once == 2  # two at once, never three
    share = str(max(1, child_env.usable_cores() // 2))
    starts = [e for e in events if e["event"] == "start"]
    for e in starts:
        assert e["env"]["TF_NUM_INTRAOP_THREADS"] == e["env"]["TF_NUM_INTEROP_THREADS"] == share
        assert e["env"]["OMP_NUM_THREADS"] == share and e["env"]["CUDA_VISIBLE_DEVICES"] in ("3", "5")
    for a in starts:  # children running at the same time have different GPUs
        for b in starts:
            if a is not b and spans[a["name"]][0] <= spans[b["name"]][0] < spans[a["name"]][1]:
                assert a["env"]["CUDA_VISIBLE_DEVICES"] != b["env"]["CUDA_VISIBLE_DEVICES"]


def _command(args, monkeypatch, child):
    real = runner.run_benchmark
    monkeypatch.setattr(benchmark_command, "run_benchmark", lambda *a, **k: real(*a, child_command=child, gpus=[], **k))
    monkeypatch.setattr(benchmark_command, "resolve_prepared", fake_prepare)
    parser = argparse.ArgumentParser()
    benchmark_command.configure_parser(parser)
    parser.add_argument("--verbose", action="store_true")  # as islesbench.cli adds it to every command
    return benchmark_command.run_command(parser.parse_args(args))


def test_benchmark_exits_3_when_a_cell_crashed_and_the_report_lists_it(tmp_path, fake_child, monkeypatch, capsys):
    runs = tmp_path / "runs"
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(json.dumps({"cells": [{"arch": "unet"}, {"arch": "vnet"}, {"arch": "threshold"}],
                                     "ensemble": None}))
    monkeypatch.setenv("FAKE_CELLS", json.dumps({"vnet-focal": "segv"}))
    args = ["--data", "/d", "--out", str(runs), "--grid", str(grid_file), "--folds", "2", "--jobs", "2"]
    assert _command(args, monkeypatch, fake_child) == benchmark_command.CRASHED_EXIT == 3
    out = capsys.readouterr().out
    assert "Epoch 1/1" not in out  # the children's output goes to their logs only
    progress = [line for line in out.splitlines() if line.startswith("benchmark: ")]
    assert progress[-1].startswith("benchmark: 2 done, 0 running, 1 crashed of 3 cells; elapsed ")
    assert "\r" not in out  # not a terminal: plain lines
    assert f"SIGSEGV; log: {runs / 'logs' / 'vnet-focal.log'}" in out
    md = (runs / "report" / "report.md").read_text()
    assert "**vnet-focal** (crashed): crashed: its child process killed by signal SIGSEGV (11)" in md
    assert "islesbench run --arch vnet --loss focal" in md

    monkeypatch.setenv("FAKE_CELLS", "{}")
    assert _command(args + ["--verbose", "--no-report"], monkeypatch, fake_child) == 0
    out = capsys.readouterr().out
    assert "[vnet-focal] Epoch 1/1 - fake keras line" in out  # --verbose streams the children's output


SELFSUP_GRID = {"cells": [{"arch": "pspnet"}, {"arch": "pspnet", "pretrained": "selfsup"}, {"arch": "threshold"}],
                "pretraining": {"data": ["unlabelled"]}, "ensemble": None}


def test_pretraining_runs_in_children_a_crash_costs_only_the_selfsup_cells_and_the_same_call_resumes(
        tmp_path, fake_child, monkeypatch):
    runs = tmp_path / "runs"
    log = runs / "logs" / "pretraining-selfsup.log"

    def benchmark(stream):
        return runner.run_benchmark(grid_from_dict(SELFSUP_GRID), "/d", runs, "quick", num_folds=2, jobs=2,
                                    child_command=fake_child, gpus=[], prepare=fake_prepare, read_run=read_run,
                                    progress=Progress(3, jobs=2, stream=stream, tty=False))

    monkeypatch.setenv("FAKE_CELLS", json.dumps({"pretraining": "segv"}))
    stream = io.StringIO()
    record = benchmark(stream)
    pre = record["pretraining"]
    assert pre["status"] == "crashed" and pre["signal"] == {"name": "SIGSEGV", "number": 11}
    assert pre["log"] == str(log) and list(pre["folds"]) == ["0"] and pre["reason"].startswith("fold 0: crashed")
    cells = {c["name"]: c for c in record["cells"]}
    assert cells["pspnet-selfsup-focal"]["status"] == "not run"
    assert "its self-supervised pretraining did not finish: fold 0: crashed" in cells["pspnet-selfsup-focal"]["reason"]
    assert cells["pspnet-scratch-focal"]["status"] == cells["threshold"]["status"] == "done"  # the grid went on
    out = stream.getvalue()
    assert "pretraining fold 0: started" in out and "pretraining fold 0: crashed after" in out
    assert "Epoch 1/1" not in out and "Epoch 1/1 - fake keras line" in log.read_text()  # Keras' lines: the log

    seen = len(_events(runs))
    monkeypatch.setenv("FAKE_CELLS", "{}")
    again = benchmark(io.StringIO())
    folds = again["pretraining"]["folds"]
    assert again["pretraining"]["status"] == "done" and list(folds) == ["0", "1"]
    assert (folds["1"]["cases"], folds["1"]["excluded_cases"], folds["1"]["training_seconds"]) == (9, 2, 1.5)
    assert {c["name"]: c["status"] for c in again["cells"]}["pspnet-selfsup-focal"] == "done"
    events = _events(runs)[seen:]  # this call's: each fold's pretraining alone, with every thread, before the cell
    assert [(e["name"], e["event"]) for e in events[:4]] == [("pretraining-fold0", "start"), ("pretraining-fold0", "end"),
                                                           ("pretraining-fold1", "start"), ("pretraining-fold1", "end")]
    assert events[0]["env"]["TF_NUM_INTRAOP_THREADS"] == str(child_env.usable_cores())
    assert "pspnet-selfsup-focal" in [e["name"] for e in events[4:] if e["event"] == "start"]


def test_benchmark_exits_3_when_the_pretraining_crashed(tmp_path, fake_child, monkeypatch, capsys):
    runs = tmp_path / "runs"
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(json.dumps(SELFSUP_GRID))
    monkeypatch.setenv("FAKE_CELLS", json.dumps({"pretraining": "exit1"}))
    args = ["--data", "/d", "--out", str(runs), "--grid", str(grid_file), "--folds", "2", "--no-report"]
    assert _command(args, monkeypatch, fake_child) == benchmark_command.CRASHED_EXIT
    out = capsys.readouterr().out
    assert f"exit status 1; log: {runs / 'logs' / 'pretraining-selfsup.log'}" in out
    assert "pretraining/selfsup" in out and "Epoch 1/1" not in out


def test_child_outcome_decides_the_status():
    assert cell_process.child_outcome(0, ["x"], "l", "c") == {}
    assert cell_process.child_outcome(2, ["Epoch 1", "islesbench run: error: no weights: get them", "x"], "l", "c") == {
        "status": "not run", "reason": "no weights: get them", "log": "l"}
    killed = cell_process.child_outcome(-signal.SIGKILL, [], "l", "c")
    assert killed["status"] == "crashed" and killed["signal"] == {"name": "SIGKILL", "number": 9}
    assert killed["command"] == "c" and killed["log"] == "l"
    exited = cell_process.child_outcome(134, ["Aborted"], "l", "c")
    assert exited["exit_status"] == 134 and "Aborted" in exited["reason"]


def test_gpus_are_assigned_round_robin_one_per_child():
    assert child_env.visible_gpus({"CUDA_VISIBLE_DEVICES": "2,7"}) == ["2", "7"]
    assert child_env.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert child_env.visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert child_env.visible_gpus({}, query=lambda: "0\n1\n2\n") == ["0", "1", "2"]

    def absent():
        raise FileNotFoundError("nvidia-smi")

    assert child_env.visible_gpus({}, query=absent) == []
    assert [child_env.gpu_for_slot(s, ["0", "1"]) for s in range(4)] == ["0", "1", "0", "1"]
    assert child_env.gpu_for_slot(3, []) == ""
    env = child_env.cell_env(jobs=3, slot=1, gpus=["4", "6"], cores=16)
    assert (env["TF_NUM_INTRAOP_THREADS"], env["TF_NUM_INTEROP_THREADS"], env["OMP_NUM_THREADS"]) == ("5", "5", "5")
    assert env["CUDA_VISIBLE_DEVICES"] == "6" and env["PYTHONUNBUFFERED"] == "1"
    assert child_env.thread_share(4, cores=2)["TF_NUM_INTRAOP_THREADS"] == "1"


def test_progress_line_on_a_terminal_and_in_a_log():
    now = [0.0]
    tty = io.StringIO()
    p = Progress(4, jobs=2, stream=tty, tty=True, clock=lambda: now[0], refresh_seconds=0)
    p.start("a")
    p.start("b")
    now[0] = 60.0
    p.finish("a", "done", 60.0)
    p.finish("b", "crashed", 40.0)
    p.close()
    shown = tty.getvalue()
    assert shown.startswith("\rbenchmark: 0 done, 1 running, 0 crashed of 4 cells; elapsed 0 s; ETA after the first cell")
    assert "\rbenchmark: 1 done, 0 running, 1 crashed of 4 cells; elapsed 60 s; ETA 50 s" in shown  # 2 left / 2 jobs x 50 s
    assert shown.endswith("\n") and shown.count("\n") == 1
    log = io.StringIO()
    p = Progress(1, stream=log, tty=False, clock=lambda: 0.0)
    p.start("a")
    p.finish("a", "not run", 1.0)
    assert log.getvalue().splitlines() == ["benchmark: 0 done, 1 running, 0 crashed of 1 cells; elapsed 0 s; ETA after the first cell",
                                           "benchmark: 0 done, 0 running, 0 crashed, 1 not run or partial of 1 cells; elapsed 0 s; ETA 0 s"]


PROBE = """
import os, tensorflow as tf
x = tf.random.normal((256, 256))
for _ in range(3):
    x = tf.matmul(x, x) / 256.0
x.numpy()
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print(names.count("tf_Compute"), len(names))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
def test_tensorflow_takes_the_childs_thread_share_from_the_environment():
    """TensorFlow sizes its inter-op pool (threads named tf_Compute) from TF_NUM_INTEROP_THREADS, and its
    intra-op pool from TF_NUM_INTRAOP_THREADS: a child given 3 has 3, one given 1 has 1 and fewer threads."""
    counts = {}
    for cores in (6, 2):
        env = child_env.cell_env(jobs=2, slot=0, gpus=[], cores=cores)
        out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        counts[cores] = [int(v) for v in out.stdout.split()]
    assert counts[6][0] == 3 and counts[2][0] == 1
    assert counts[6][1] - counts[2][1] >= 2 * 2  # both pools grew by 2 threads


# --------------------------------------------------------------------------------------------------
# A tiny real grid: U-Net focal and CE and the threshold rule, 2 folds, 1 short epoch, children for real.

TINY = {"cells": [{"arch": "unet"}, {"arch": "unet", "loss": "ce"}, {"arch": "threshold"}],
        "overrides": {"train": {"epochs": 1, "steps_per_epoch": 2}, "data": {"input_size": 64}}, "ensemble": None}


def _tiny_run(data, runs, jobs, child=None):
    from islesbench.data_prep.prepare import resolve_prepared

    return runner.run_benchmark(grid_from_dict(TINY), data, runs, "quick", num_folds=2, jobs=jobs,
                                child_command=child, prepare=resolve_prepared, read_run=read_run)


def _per_case_dice(runs) -> dict:
    out = {}
    for name in ("unet-focal", "unet-ce", "threshold"):
        run = read_run(runs / name)
        out[name] = {r["case"]: r["dice"] for r in run.rows}
    return out


@pytest.fixture(scope="module")
def tiny_grid_jobs1(tmp_path_factory):
    """The tiny grid run with --jobs 1: its data and its per-case Dice."""
    from islesbench.data_prep.synth import synthesize_cohort

    root = tmp_path_factory.mktemp("tinygrid")
    synthesize_cohort(root / "synth", cases=6, seed=0, size=64)
    record = _tiny_run(root / "synth", root / "runs1", jobs=1)
    assert all(c["status"] == "done" for c in record["cells"]), record["cells"]
    return root / "synth", _per_case_dice(root / "runs1")


@pytest.mark.slow
def test_tiny_grid_gives_the_same_per_case_dice_with_two_jobs(tiny_grid_jobs1, tmp_path):
    data, dice = tiny_grid_jobs1
    record = _tiny_run(data, tmp_path / "runs2", jobs=2)
    assert all(c["status"] == "done" for c in record["cells"]), record["cells"]
    assert _per_case_dice(tmp_path / "runs2") == dice
    assert len(dice["unet-ce"]) == 6


@pytest.mark.slow
def test_a_cell_killed_by_sigsegv_mid_fold_is_crashed_and_the_same_call_completes_it(tiny_grid_jobs1, tmp_path,
                                                                                    monkeypatch):
    from cell_children import SEGV_WRAPPER

    data, dice = tiny_grid_jobs1
    wrapper = tmp_path / "segv_wrapper.py"
    wrapper.write_text(SEGV_WRAPPER)
    child = [sys.executable, str(wrapper)]
    runs = tmp_path / "runs"
    monkeypatch.setenv("SEGV_ARGS", "--loss ce")  # unet-ce dies after its first epoch is committed
    record = _tiny_run(data, runs, jobs=2, child=child)
    cells = {c["name"]: c for c in record["cells"]}
    assert cells["unet-ce"]["status"] == "crashed", cells["unet-ce"]
    assert cells["unet-ce"]["signal"] == {"name": "SIGSEGV", "number": 11}
    assert cells["unet-ce"]["folds_done"] == [] and (runs / "unet-ce" / "fold_0" / "history.csv").exists()
    assert cells["unet-focal"]["status"] == cells["threshold"]["status"] == "done"

    monkeypatch.delenv("SEGV_ARGS")
    again = _tiny_run(data, runs, jobs=2, child=child)
    cells = {c["name"]: c for c in again["cells"]}
    assert all(c["status"] == "done" for c in again["cells"]), again["cells"]
    assert cells["unet-ce"]["folds_trained"] == 2 and cells["unet-focal"]["folds_trained"] == 0
    assert _per_case_dice(runs) == dice


def test_a_cells_child_dies_with_its_killed_benchmark(tmp_path):
    """A parent killed with SIGKILL cannot stop its children: the child asks Linux to kill it then."""
    child = "from islesbench.runtime.child_env import die_with_parent; die_with_parent(); import time; time.sleep(120)"
    parent = (
        "import os, signal, subprocess, sys, time\n"
        "from islesbench.runtime.child_env import cell_env\n"
        f"proc = subprocess.Popen([sys.executable, '-c', {child!r}], env=cell_env(1, 0, []))\n"
        "print(proc.pid, flush=True)\n"
        "time.sleep(1.5)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, timeout=60)
    assert out.returncode == -signal.SIGKILL
    pid = int(out.stdout.split()[0])
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"child {pid} outlived its killed parent")


def test_eta_ignores_cells_that_did_not_run():
    """Cells refused in seconds (ImageNet weights offline) must not make the ETA of training cells tiny."""
    p = Progress(4, stream=io.StringIO(), tty=False, clock=lambda: 0.0)
    p.finish("pspnet-imagenet-focal", "not run", 0.1)
    assert p.eta() == "after the first cell"
    p.finish("unet-focal", "done", 120.0)
    assert p.eta() == "4.0 min"  # 2 cells left x 120 s
