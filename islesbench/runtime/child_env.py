"""The environment of an islesbench child process (a test's CLI call, a robustness driver's worker, a
benchmark cell).

One owner, because every child must start the same way: TensorFlow's C++ start-up lines hidden,
output unbuffered (a parent reads it line by line, and a killed child must not lose what it printed),
CPU only unless told which GPU, and no distributed role inherited from the parent (TF_CONFIG,
KerasTuner's oracle variables), which would make a plain child wait for peers that never come.

Threads of a child that shares the machine with others (`cell_env`): TensorFlow 2.21 sizes its two
thread pools from TF_NUM_INTRAOP_THREADS and TF_NUM_INTEROP_THREADS when the process does not set them
through tf.config.threading (measured: the `tf_Compute` threads of a process are exactly the inter-op
number, its Eigen intra-op pool follows the intra-op number; `tf.config.threading.get_*` still answers 0,
"TensorFlow's default", because it reports only what Python set). OMP_NUM_THREADS bounds OpenMP in
oneDNN builds and libraries that use it. So the variables are enough, and nothing in the child has to
read them back.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

INHERITED_ROLES = ("TF_CONFIG", "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")
# Set in a benchmark cell's child: the pid of the `benchmark` process it must not outlive.
PARENT_PID = "ISLESBENCH_PARENT_PID"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


def child_env(**extra) -> dict:
    """A copy of this process's environment for a quiet, CPU-only, stand-alone child; `extra` is set last."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    for key in INHERITED_ROLES:
        env.pop(key, None)
    env.update(extra)
    return env


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def thread_share(jobs: int, cores: int | None = None) -> dict:
    """The thread variables of one of `jobs` children running at once: intra-op threads max(1, cores // jobs),
    inter-op the same (TensorFlow's own default, both pools as wide as the cores, scaled to the share, so
    one job gets exactly what a plain process would)."""
    cores = usable_cores() if cores is None else cores
    share = max(1, cores // max(1, jobs))
    return {"TF_NUM_INTRAOP_THREADS": str(share), "TF_NUM_INTEROP_THREADS": str(share), "OMP_NUM_THREADS": str(share)}


def effective_threads(environ=None) -> dict:
    """The thread counts this process's TensorFlow runs with: what tf.config.threading set, else the
    variables above, else the defaults (TensorFlow's pools and OpenMP as wide as the usable cores).

    Recorded with each fold (islesbench.storage.provenance): reductions run in another order with other
    thread counts, so the numbers move (README, `--jobs`)."""
    environ = os.environ if environ is None else environ
    set_in_python = {"intra_op": 0, "inter_op": 0}
    tf = sys.modules.get("tensorflow")  # only read back when already imported: never start TensorFlow for this
    if tf is not None and hasattr(tf, "config"):
        set_in_python = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                         "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}

    def pool(name, variable):
        value = environ.get(variable, "").strip()
        return set_in_python[name] or (int(value) if value.isdigit() and int(value) > 0 else usable_cores())

    omp = environ.get("OMP_NUM_THREADS", "").strip()
    return {"intra_op": pool("intra_op", "TF_NUM_INTRAOP_THREADS"), "inter_op": pool("inter_op", "TF_NUM_INTEROP_THREADS"),
            "omp": int(omp) if omp.isdigit() and int(omp) > 0 else usable_cores()}


def visible_gpus(environ=None, query=None) -> list[str]:
    """The GPU ids a child may be given: CUDA_VISIBLE_DEVICES of this process when it is set (empty or -1:
    none), else the indices `nvidia-smi` lists (none when it is absent or fails). `query()` -> text stands
    in for nvidia-smi in tests."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        ids = [g.strip() for g in environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
        return [] if not ids or ids[0] == "-1" else ids
    if query is None:
        query = _nvidia_smi_indices
    try:
        text = query()
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in (text or "").splitlines() if line.strip().isdigit()]


def gpu_for_slot(slot: int, gpus: list[str]) -> str:
    """CUDA_VISIBLE_DEVICES of the child in pool slot `slot`: one GPU, round-robin over `gpus`; "" (CPU) without any."""
    return gpus[slot % len(gpus)] if gpus else ""


def cell_env(jobs: int, slot: int, gpus: list[str], cores: int | None = None, **extra) -> dict:
    """child_env for slot `slot` of `jobs` children at once: its share of the CPU threads and its GPU."""
    return child_env(**thread_share(jobs, cores), CUDA_VISIBLE_DEVICES=gpu_for_slot(slot, gpus),
                     **{PARENT_PID: str(os.getpid())}, **extra)


def die_with_parent() -> None:
    """In a child started with PARENT_PID: have Linux SIGKILL this process when its parent dies.

    A `benchmark` killed with SIGKILL (or by the OOM killer) cannot stop its cells, which would go on
    training into the run folders that the re-run `benchmark` resumes. Elsewhere than Linux, or without
    PARENT_PID, nothing happens. A child whose parent is already gone leaves at once.
    """
    parent = os.environ.get(PARENT_PID)
    if not parent or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):
        os._exit(1)


def _nvidia_smi_indices() -> str:
    return subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                          text=True, timeout=30, check=True).stdout
