"""`islesbench benchmark --executor ray`: the same records as the local executor on a two-node Ray cluster,
a task lost with its node retried on the other, a runs folder the nodes cannot write refused; and the
local executor never loads Ray.

Ray binds the machine's interface address even when told 127.0.0.1, and tests may use loopback only, so
the cluster runs in a private network namespace: tests/grid/ray_cluster_check.py under
`unshare -n sh -c 'ip link set lo up && python ...'` (root; skipped where that is not possible).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _namespace_problem() -> str | None:
    if importlib.util.find_spec("ray") is None:
        return "ray is not installed (pip install 'islesbench[cluster]')"
    if not (shutil.which("unshare") and shutil.which("ip")):
        return "needs unshare and ip for a loopback-only network namespace"
    try:
        out = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unshare -n failed: {exc}"
    if out.returncode != 0:
        return f"unshare -n is not permitted here: {out.stderr.decode(errors='replace').strip()[:200]}"
    return None


def _in_namespace(mode: str, out: Path) -> dict:
    problem = _namespace_problem()
    if problem:
        pytest.skip(problem)
    script = f"ip link set lo up && exec {sys.executable} {HERE / 'ray_cluster_check.py'} {mode} {out}"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(["unshare", "-n", "sh", "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads((out / "result.json").read_text())


def test_the_ray_executor_records_the_same_statuses_as_the_local_one(tmp_path):
    result = _in_namespace("same", tmp_path)
    assert result["nodes"] == 2
    assert result["local_executor"] == "local" and result["ray_executor"] == "ray"
    assert result["ray"] == result["local"]
    cells = {c["name"]: c for c in result["ray"]}
    assert cells["unet-focal"]["status"] == "crashed"
    assert cells["unet-focal"]["signal"] == {"name": "SIGSEGV", "number": 11}
    assert cells["vnet-focal"]["status"] == "crashed" and cells["vnet-focal"]["exit_status"] == 1
    assert cells["pspnet-imagenet-focal"]["status"] == "not run"
    assert cells["pspnet-scratch-focal"]["status"] == cells["threshold"]["status"] == "done"
    error = result["probe_error"]
    assert error.startswith(f"the runs folder {tmp_path / 'not-shared'} must be shared storage")
    assert "\n" not in error


def test_a_cell_lost_with_its_node_is_retried_on_the_other(tmp_path):
    result = _in_namespace("lost", tmp_path)
    assert result["nodes"] == 2
    assert [c["status"] for c in result["ray"]] == ["done", "done"], result["ray"]
    starts = result["starts"]
    assert sorted(starts[:2]) == ["unet-focal", "vnet-focal"] and len(starts) == 3  # one cell started twice
    again = starts[2]
    assert result["log"].count(f"--arch {again.split('-')[0]} ") == 2  # its log holds both attempts


@pytest.mark.slow
def test_the_tiny_real_grid_gives_the_same_per_case_dice_on_ray_as_with_one_job(tmp_path):
    """About 85 s on 2 cores: U-Net focal and CE and the threshold rule, 2 folds, 1 short epoch."""
    result = _in_namespace("real", tmp_path)
    assert result["local_status"] == result["ray_status"] == ["done", "done", "done"]
    assert result["ray_dice"] == result["local_dice"] and len(result["ray_dice"]["unet-ce"]) == 6


LOCAL_ONLY = """
import json, sys, types
from islesbench.cli import main
try:
    main(["benchmark", "--help"])
except SystemExit:
    pass
help_loaded = "ray" in sys.modules
from islesbench.grid import runner
from islesbench.grid.grid_file import grid_from_dict
from islesbench.reports.results_reader import read_run
prepare = lambda data, runs_root, num_folds, seed=0, layout=None: types.SimpleNamespace(
    data=data, splits=lambda: [{"train": [], "val": []} for _ in range(num_folds)])
record = runner.run_benchmark(grid_from_dict({"cells": [{"arch": "threshold"}], "ensemble": None}), "/d",
                              sys.argv[2], "quick", num_folds=1, child_command=[sys.executable, sys.argv[1]],
                              gpus=[], prepare=prepare, read_run=read_run)
print(json.dumps({"help": help_loaded, "run": "ray" in sys.modules,
                  "status": [c["status"] for c in record["cells"]]}))
"""


def test_the_local_executor_never_loads_ray(tmp_path):
    from cell_children import FAKE_CHILD

    child = tmp_path / "fake_child.py"
    child.write_text(FAKE_CHILD)
    proc = subprocess.run([sys.executable, "-c", LOCAL_ONLY, str(child), str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {"help": False, "run": False, "status": ["done"]}


def test_the_benchmark_command_passes_the_ray_options(monkeypatch, tmp_path):
    import argparse

    from islesbench.commands import benchmark as benchmark_command
    from islesbench.errors import IslesbenchError
    from islesbench.grid import runner

    seen = {}

    def fake_run_benchmark(*args, **kwargs):
        seen.update(kwargs)
        return {"cells": [], "wall_seconds": 0.0}

    monkeypatch.setattr(benchmark_command, "run_benchmark", fake_run_benchmark)
    parser = argparse.ArgumentParser()
    benchmark_command.configure_parser(parser)
    args = parser.parse_args(["--data", "/d", "--out", str(tmp_path), "--no-report", "--executor", "ray",
                              "--address", "10.0.0.1:6379", "--cell-cpus", "4", "--cell-gpus", "1"])
    assert benchmark_command.run_command(args) == 0
    assert (seen["executor"], seen["address"], seen["cell_cpus"], seen["cell_gpus"]) == ("ray", "10.0.0.1:6379", 4, 1)
    assert parser.parse_args(["--data", "/d"]).executor == "local"
    with pytest.raises(IslesbenchError, match="--executor must be local or ray"):
        runner.run_benchmark(None, "/d", tmp_path, "quick", executor="dask", prepare=None, read_run=None)
