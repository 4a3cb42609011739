"""Run by tests/grid/test_ray.py inside a private network namespace (`unshare -n`, loopback only): a
two-node ray.cluster_utils.Cluster (head + one worker node) runs a tiny grid of fake children
(cell_children.FAKE_CHILD) through `--executor ray`; the records go to OUT/result.json.

    python ray_cluster_check.py same OUT      the grid with the local executor, then with Ray; a runs
                                              folder the nodes cannot write is refused
    python ray_cluster_check.py lost OUT      the worker node removed while a cell runs there
    python ray_cluster_check.py real OUT      the tiny real grid: --jobs 1, then Ray; per-case Dice
"""

import json
import os
import sys
import threading
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ray  # noqa: E402
from cell_children import FAKE_CHILD  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from islesbench.errors import IslesbenchError  # noqa: E402
from islesbench.grid import runner  # noqa: E402
from islesbench.grid.grid_file import grid_from_dict  # noqa: E402
from islesbench.grid.ray_executor import RayCells  # noqa: E402
from islesbench.reports.results_reader import read_run  # noqa: E402

GRID = {"cells": [{"arch": "pspnet", "pretrained": "imagenet"}, {"arch": "pspnet"}, {"arch": "unet"},
                  {"arch": "vnet"}, {"arch": "threshold"}], "ensemble": None}
BEHAVIOURS = {"same": {"pspnet-imagenet-focal": "error", "unet-focal": "segv", "vnet-focal": "exit1"},
              "lost": {"unet-focal": "sleep:6", "vnet-focal": "sleep:6"}, "real": {}}
KEYS = ("name", "status", "reason", "signal", "exit_status", "folds_done", "folds_trained", "command", "log")


def fake_prepare(data, runs_root, num_folds, seed=0, layout=None, target=None):
    return types.SimpleNamespace(data=data, splits=lambda: [{"train": [], "val": []} for _ in range(num_folds)])


def summary(record, runs):
    return [{k: str(c[k]).replace(str(runs), "RUNS") if isinstance(c.get(k), str) else c.get(k)
             for k in KEYS if k in c} for c in record["cells"]]


def events(runs):
    path = runs / "children.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def main(mode, out):
    out = Path(out)
    child = out / "fake_child.py"
    child.write_text(FAKE_CHILD)
    prefix = [sys.executable, str(child)]
    result = {}
    # The nodes' workers inherit this process's environment when the cluster starts (not later).
    os.environ["FAKE_CELLS"] = json.dumps(BEHAVIOURS[mode])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        result["nodes"] = len([n for n in ray.nodes() if n["Alive"]])

        def grid_run(runs, executor, grid=GRID, **kw):
            return runner.run_benchmark(grid_from_dict(grid), "/d", runs, "quick", num_folds=2, jobs=2,
                                        child_command=prefix, gpus=[], prepare=fake_prepare, read_run=read_run,
                                        executor=executor, **kw)

        if mode == "same":
            for executor in ("local", "ray"):
                runs = out / f"runs-{executor}"
                t0 = time.monotonic()
                record = grid_run(runs, executor)
                result[executor] = summary(record, runs)
                result[f"{executor}_seconds"] = round(time.monotonic() - t0, 1)
                result[f"{executor}_executor"] = record["executor"]
            # A runs folder that the nodes cannot write (here: absent on them) is refused in one line.
            try:
                RayCells(out / "not-shared").start()
                result["probe_error"] = None
            except IslesbenchError as exc:
                result["probe_error"] = str(exc)
        elif mode == "lost":
            grid = {"cells": [{"arch": "unet"}, {"arch": "vnet"}], "ensemble": None}
            runs = out / "runs"
            done = {}
            thread = threading.Thread(target=lambda: done.update(record=grid_run(runs, "ray", grid=grid)))
            t0 = time.monotonic()
            thread.start()
            while len([e for e in events(runs) if e["event"] == "start"]) < 2:  # one cell on each node
                if time.monotonic() - t0 > 60:
                    raise RuntimeError(f"the cells did not start: {events(runs)}")
                time.sleep(0.1)
            time.sleep(1.0)
            cluster.remove_node(worker)
            result["removed_after"] = round(time.monotonic() - t0, 1)
            thread.join(180)
            result["seconds"] = round(time.monotonic() - t0, 1)
            result["ray"] = summary(done["record"], runs)
            result["starts"] = [e["name"] for e in events(runs) if e["event"] == "start"]
            result["log"] = (runs / "logs" / "unet-focal.log").read_text() + (runs / "logs" / "vnet-focal.log").read_text()
        elif mode == "real":  # the tiny real grid of test_isolation: --jobs 1, then Ray (1 CPU per cell)
            from islesbench.data_prep.prepare import resolve_prepared
            from islesbench.data_prep.synth import synthesize_cohort

            tiny = {"cells": [{"arch": "unet"}, {"arch": "unet", "loss": "ce"}, {"arch": "threshold"}],
                    "overrides": {"train": {"epochs": 1, "steps_per_epoch": 2}, "data": {"input_size": 64}},
                    "ensemble": None}
            synthesize_cohort(out / "synth", cases=6, seed=0, size=64)
            for executor in ("local", "ray"):
                runs = out / f"runs-{executor}"
                t0 = time.monotonic()
                record = runner.run_benchmark(grid_from_dict(tiny), out / "synth", runs, "quick", num_folds=2,
                                              jobs=1, prepare=resolve_prepared, read_run=read_run,
                                              executor=executor)
                result[f"{executor}_seconds"] = round(time.monotonic() - t0, 1)
                result[f"{executor}_status"] = [c["status"] for c in record["cells"]]
                result[f"{executor}_dice"] = {name: {r["case"]: r["dice"] for r in read_run(runs / name).rows}
                                              for name in ("unet-focal", "unet-ce", "threshold")}
    finally:
        ray.shutdown()
        cluster.shutdown()
    (out / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:3])
