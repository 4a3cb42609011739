"""The benchmark's cells as Ray tasks (`islesbench benchmark --executor ray`).

Each cell is one Ray task (`num_cpus` = --cell-cpus, `num_gpus` = --cell-gpus, retried `max_retries`
times when its worker or node dies) that runs the cell's child command (`python -m islesbench run ...`,
exactly as the local executor does) on whatever node it lands on, with that many CPU threads
(islesbench.runtime.child_env.cell_env) and the GPUs Ray gave the task, its output appended to
RUNS/logs/<cell>.log, and returns the child's exit status and last lines; the parent decides the status
with the same islesbench.grid.cell_process.child_outcome as the local executor. A rerun task resumes
from the last committed epoch because `islesbench run` resumes by itself. The runs folder must be one
filesystem every node sees: `start` refuses with one line when a node cannot write a probe file into it.

Ray is imported here, inside functions only: the local executor never loads it.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from islesbench.errors import IslesbenchError
from islesbench.grid import cell_process
from islesbench.runtime import child_env

DEFAULT_RETRIES = 3
PROBE_SECONDS = 300  # a node's first task may have to start a worker process


def _probe(runs_root: str) -> str | None:
    """On a node: write and remove a probe file in the runs folder; None, or what went wrong (with the host)."""
    path = Path(runs_root) / f".islesbench-probe-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        path.write_text("probe\n")
        path.unlink()
    except OSError as exc:
        return f"{socket.gethostname()}: {exc.strerror or exc}"
    return None


def _run_cell_task(args: list[str], prefix: list[str] | None, log_path: str, command: str, cpus: int,
                   cwd: str | None) -> tuple[int, list[str]]:
    """A Ray task's body, on its node: the cell's child with `cpus` threads and the task's GPUs."""
    import ray  # noqa: PLC0415 (on the worker, inside Ray already)

    gpus = [str(g) for g in ray.get_gpu_ids()]
    env = child_env.cell_env(1, 0, [], cores=max(1, int(cpus)))
    env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    argv = list(prefix or cell_process.default_child_command()) + list(args)
    if cwd is not None and not os.path.isdir(cwd):
        cwd = None
    return cell_process.run_logged_child(argv, env, Path(log_path), command, cwd=cwd)


class RayCells:
    """Runs cells as Ray tasks on the cluster at `address` (None: a local Ray started here)."""

    def __init__(self, runs_root, address: str | None = None, cell_cpus: float = 1, cell_gpus: float = 0,
                 max_retries: int = DEFAULT_RETRIES, child_command: list[str] | None = None):
        if cell_cpus <= 0:
            raise IslesbenchError(f"--cell-cpus must be > 0, not {cell_cpus}")
        if cell_gpus < 0:
            raise IslesbenchError(f"--cell-gpus must be >= 0, not {cell_gpus}")
        self.runs_root = Path(runs_root).resolve()
        self.address = address
        self.cell_cpus = cell_cpus
        self.cell_gpus = cell_gpus
        self.max_retries = max_retries
        self.prefix = list(child_command) if child_command else None
        self._started_ray = False
        self._task = None

    def start(self) -> None:
        """Connect to (or start) Ray and check that every alive node can write the runs folder."""
        try:
            import ray
        except ImportError:
            raise IslesbenchError("--executor ray needs Ray: pip install 'islesbench[cluster]' (or pip install ray)") from None
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, log_to_driver=False, include_dashboard=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise IslesbenchError(f"cannot reach the Ray cluster at {self.address or 'a new local Ray'}: "
                                      f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
            self._started_ray = True
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = ray.remote(num_cpus=0, max_retries=0)(_probe)
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
            str(self.runs_root)) for node in nodes]
        try:
            problems = [p for p in ray.get(refs, timeout=PROBE_SECONDS) if p]
        except ray.exceptions.GetTimeoutError:
            raise IslesbenchError(f"the Ray nodes did not answer a write probe of the runs folder {self.runs_root} "
                                  f"within {PROBE_SECONDS} s") from None
        if problems:
            raise IslesbenchError(f"the runs folder {self.runs_root} must be shared storage that every Ray node "
                                  f"can write; not writable on {'; '.join(problems)}")
        self._task = ray.remote(num_cpus=self.cell_cpus, num_gpus=self.cell_gpus,
                                max_retries=self.max_retries)(_run_cell_task)

    def run(self, args: list[str], log_path, command: str) -> dict:
        """Run one cell (its `islesbench run` arguments) as a Ray task and wait; its status fields."""
        import ray

        cpus = max(1, int(self.cell_cpus))
        ref = self._task.remote(list(args), self.prefix, str(log_path), command, cpus, os.getcwd())
        try:
            returncode, lines = ray.get(ref)
        except ray.exceptions.RayError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            return cell_process.lost_outcome(f"its Ray task was lost after {self.max_retries} retries "
                                             f"({type(exc).__name__}: {first})", log_path, command)
        return cell_process.child_outcome(returncode, lines, log_path, command)

    def close(self) -> None:
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False
