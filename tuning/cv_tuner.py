"""A KerasTuner tuner whose objective is the mean validation Dice over K patient-grouped folds.

Search (the Oracle: random, Bayesian or Hyperband, KerasTuner's own, state in JSON) is kept apart from
execution (`CrossValidatedTuner.run_trial`: train and validate K folds). Each trial's folds live in
the results layout (islesbench.storage.run_layout) under `OUT/trials/<trial_id>/fold_<k>`, so

* a finished fold (DONE marker) is never retrained; its score is read back from validation/summary.json;
* an interrupted fold continues from its last completed epoch (fold.fit_fold's backup files);
* an interrupted trial is put back in the Oracle's retry queue by KerasTuner when the search is
  reloaded (`overwrite=False`), gets the same trial id and therefore finds its own folds again.

Memory stays flat across trials: each fold trains in a child process of its own (`run_fold_in_child`;
Keras' fit keeps memory that clear_session does not return), and in-process folds (isolate_folds=False)
end with `keras.backend.clear_session()` and `gc.collect()`. `rss_mb` in the metrics is the search
process's resident memory after each trial.

Distributed search uses KerasTuner's chief/worker mode (`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP`,
`KERASTUNER_ORACLE_PORT`). The chief only serves the Oracle (`serve_oracle`), with a timeout KerasTuner
lacks: workers send a heartbeat while they run a trial; a trial whose worker is silent for
`worker_timeout` seconds is handed back to the retry queue (another worker resumes it), and a chief
that hears from no worker for that long stops with a clear message instead of waiting forever.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import shutil
import signal
import threading
import time
from concurrent import futures
from pathlib import Path

import keras_tuner
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import base_tuner
from keras_tuner.src.engine import trial as trial_module

from islesbench.atomic import write_json_atomic
from islesbench.config import ExperimentConfig, changed_fields
from islesbench.errors import IslesbenchError
from islesbench.storage import run_layout
from islesbench.storage.manifest import PreparedData
from islesbench.training import fold
from islesbench.tuning.search_space import trial_config

# KerasTuner's gRPC parts imported inside functions only, so that `islesbench --help` and start-up stay fast.

OBJECTIVE = "mean_val_dice"
PROJECT_NAME = "keras_tuner"  # KerasTuner's own state: OUT/keras_tuner/{oracle.json, trial_*/trial.json}
TRIALS_DIR = "trials"  # the folds of every trial: OUT/trials/<trial_id>/fold_<k>
ASSIGNMENTS = "assignments.json"  # trial id -> tuner ids that ran it, in the KerasTuner project folder
ORACLES = ("random", "bayesian", "hyperband")


def fold_score_name(k: int) -> str:
    """Metric name of fold k's validation Dice in the trial's metrics."""
    return f"dice_fold_{k}"


def make_oracle(kind: str, hyperparameters, max_trials: int, seed: int, max_epochs: int):
    """KerasTuner's Oracle of that kind over `hyperparameters`, maximising the mean validation Dice.

    Hyperband's epoch budget per trial (`tuner/epochs`, from 1 up to `max_epochs`) becomes the trial's
    train.epochs; `max_trials` caps Hyperband's trials too.
    """
    objective = keras_tuner.Objective(OBJECTIVE, direction="max")
    # KerasTuner reads seed 0 as "no seed" (`seed or random.randint(1, 10000)`): --seed 0, the default,
    # drew other trials on every fresh search. Shift by one so every --seed is a seed.
    common = dict(objective=objective, seed=seed + 1, hyperparameters=hyperparameters,
                  max_consecutive_failed_trials=3)
    if kind == "random":
        return keras_tuner.oracles.RandomSearchOracle(max_trials=max_trials, **common)
    if kind == "bayesian":
        try:
            return keras_tuner.oracles.BayesianOptimizationOracle(max_trials=max_trials, **common)
        except ImportError:
            raise IslesbenchError("--tuner bayesian needs scikit-learn (pip install 'keras-tuner[bayesian]'); "
                                  "random and hyperband work without it") from None
    if kind == "hyperband":
        oracle = keras_tuner.oracles.HyperbandOracle(max_epochs=max(1, max_epochs), factor=3,
                                                     hyperband_iterations=1, **common)
        oracle.max_trials = max_trials
        return oracle
    raise IslesbenchError(f"unknown tuner {kind!r}; choose one of {', '.join(ORACLES)}")


def _rss_mb() -> float:
    """Resident memory of this process in MiB (0 where /proc is unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _fold_child(config_dict: dict, prepared_root: str, train_ids, val_ids, fold_root: str, verbose) -> None:
    """Entry point of the fold's child process (spawned: a fresh interpreter and TensorFlow)."""

    try:  # die with the search process (Linux), so a killed search leaves no orphan training its fold
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    fold.train_and_validate_fold(ExperimentConfig.from_dict(config_dict), PreparedData(prepared_root),
                                     train_ids, val_ids, run_layout.FoldPaths(Path(fold_root)), verbose)


def run_fold_in_child(config: ExperimentConfig, prepared_root, train_ids, val_ids, paths: run_layout.FoldPaths,
                      verbose=2) -> None:
    """Train and validate one fold in a child process, so all of its memory goes back when it exits.

    Keras' `model.fit` keeps ~45 MiB per call (traced functions) that neither clear_session nor
    gc.collect returns (measured with TF 2.21 / Keras 3.15); a process per fold keeps a long search
    flat. The child's output goes to the same terminal; a failure raises here with its exit code.
    """

    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_fold_child, name=f"fold-{paths.root.parent.name}-{paths.root.name}",
                        args=(config.to_dict(), str(prepared_root), list(train_ids), list(val_ids),
                              str(paths.root), verbose))
    child.start()
    try:
        child.join()
    except BaseException:
        child.kill()
        child.join()
        raise
    if child.exitcode != 0 or not paths.is_done():
        raise RuntimeError(f"{paths.root}: the fold's training process ended with exit code {child.exitcode}")


def fold_dice(paths: run_layout.FoldPaths) -> float:
    """Mean validation Dice of a finished fold, from its validation/summary.json."""
    summary = json.loads(paths.summary_json.read_text())
    return float(summary["metrics"]["dice"]["mean"])


_ASSIGNMENTS_LOCK = threading.Lock()


def record_assignment(project_dir, trial_id: str, tuner_id: str) -> None:
    """Remember which tuner (worker) ran which trial; a resumed trial lists every tuner that ran it."""
    with _ASSIGNMENTS_LOCK:
        _record_assignment(project_dir, trial_id, tuner_id)


def _record_assignment(project_dir, trial_id: str, tuner_id: str) -> None:
    path = Path(project_dir) / ASSIGNMENTS
    data = json.loads(path.read_text()) if path.is_file() else {}
    if tuner_id not in data.setdefault(str(trial_id), []):
        data[str(trial_id)].append(tuner_id)
    write_json_atomic(path, data)


def read_assignments(project_dir) -> dict:
    """trial id -> tuner ids, as recorded by `record_assignment`."""
    path = Path(project_dir) / ASSIGNMENTS
    return json.loads(path.read_text()) if path.is_file() else {}


class _Heartbeat:
    """While a worker runs a trial, ask the chief about it every `interval` s: proof of life."""

    def __init__(self, oracle, trial_id: str, interval: float, enabled: bool = True):
        self._oracle, self._trial_id, self._interval, self._enabled = oracle, trial_id, interval, enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{trial_id}")

    def _beat(self):
        while not self._stop.wait(self._interval):
            try:
                self._oracle.get_trial(self._trial_id)
            except Exception as exc:  # the chief may be gone; training goes on, the final report fails
                print(f"warning: heartbeat to the chief failed: {exc}", flush=True)

    def __enter__(self):
        if self._enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()


class CrossValidatedTuner(base_tuner.BaseTuner):
    """A KerasTuner tuner whose `run_trial` trains and validates K folds and reports their mean Dice."""

    def __init__(self, oracle, *, prepared: PreparedData, base_config: ExperimentConfig, folds: list,
                 out_dir, worker_timeout: float = 300.0, isolate_folds: bool = True, verbose=2, splits=None):
        self.prepared = prepared
        # The folds to search on: the prepared splits, or (nested tuning) inner folds of one outer fold.
        self.splits = splits
        self.base_config = base_config
        self.fold_ids = list(folds)
        self.out_dir = Path(out_dir)
        self.worker_timeout = float(worker_timeout)
        self.isolate_folds = isolate_folds
        self.verbose = verbose
        super().__init__(oracle, hypermodel=None, directory=str(self.out_dir), project_name=PROJECT_NAME,
                         overwrite=False)

    # -- execution -----------------------------------------------------------------------------------
    def trial_dir(self, trial_id: str) -> Path:
        """OUT/trials/<trial_id>: the trial's config.json, scores.json and fold folders."""
        return run_layout.run_dir(self.out_dir / TRIALS_DIR, str(trial_id))

    def run_trial(self, trial, *args, **kwargs):
        """Train and validate the K folds (skipping finished ones) and return the fold Dice scores."""
        t0 = time.time()
        config = trial_config(self.base_config, trial.hyperparameters.values)
        self._claim_trial_dir(trial.trial_id, config)
        splits = self.splits if self.splits is not None else self.prepared.splits()
        scores = {}
        with _Heartbeat(self.oracle, trial.trial_id, max(1.0, min(30.0, self.worker_timeout / 4)),
                        enabled=self._is_worker()):
            for k in self.fold_ids:
                scores[k] = self._run_fold(config, splits[k], k, trial.trial_id)
        mean = sum(scores.values()) / len(scores)
        metrics = {OBJECTIVE: mean, "seconds": time.time() - t0, "rss_mb": _rss_mb(),
                   **{fold_score_name(k): s for k, s in scores.items()}}
        write_json_atomic(self.trial_dir(trial.trial_id) / "scores.json",
                          {"trial_id": trial.trial_id, "per_fold": {str(k): s for k, s in scores.items()},
                           **metrics})
        print(f"trial {trial.trial_id}: mean validation Dice {mean:.4f} over folds "
              f"{', '.join(f'{k}: {s:.4f}' for k, s in scores.items())} ({metrics['seconds']:.0f} s, "
              f"RSS {metrics['rss_mb']:.0f} MiB)", flush=True)
        return metrics

    def _claim_trial_dir(self, trial_id: str, config: ExperimentConfig) -> None:
        """Write the trial's config.json; a folder left by a different configuration is replaced."""
        root = self.trial_dir(trial_id)
        cfg_file = root / "config.json"
        if cfg_file.is_file() and changed_fields(json.loads(cfg_file.read_text()), config.to_dict()):
            print(f"warning: {root} holds folds of another configuration (a search state was removed?); "
                  f"starting this trial afresh", flush=True)
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
        config.save(cfg_file)

    def _run_fold(self, config: ExperimentConfig, split: dict, k: int, trial_id: str) -> float:
        paths = run_layout.fold_paths(self.out_dir / TRIALS_DIR, str(trial_id), k)
        if paths.is_done():
            print(f"trial {trial_id} fold {k}: finished earlier, skipped", flush=True)
            return fold_dice(paths)
        run_layout.prepare_fold_dir(paths)
        config.save(paths.config, fold=k)
        train_ids, val_ids = split["train"], split["val"]
        print(f"== trial {trial_id} fold {k}: {len(train_ids)} train, {len(val_ids)} val cases", flush=True)
        if self.isolate_folds:
            run_fold_in_child(config, self.prepared.root, train_ids, val_ids, paths, self.verbose)
        else:
            fold.train_and_validate_fold(config, self.prepared, train_ids, val_ids, paths, self.verbose)
        return fold_dice(paths)

    # -- bookkeeping ---------------------------------------------------------------------------------
    def on_search_begin(self):
        # KerasTuner writes the tuner file (which is what makes a re-run reload the search) only when a
        # trial ends; write it now so a search killed in its first trial resumes that trial too.
        super().on_search_begin()
        self.save()

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        if not self._is_worker():  # in distributed mode the chief records who runs what
            record_assignment(self.project_dir, trial.trial_id, self.tuner_id)

    def search(self, *fit_args, **fit_kwargs):
        """Run trials here, or (as the distributed chief) serve the Oracle until the search ends."""
        if dist_utils.is_chief_oracle():
            self.save()
            serve_oracle(self.oracle, self.project_dir, self.worker_timeout)
            return
        if self._is_worker():
            _bound_worker_waits(self.worker_timeout)
        super().search(*fit_args, **fit_kwargs)


def _bound_worker_waits(seconds: float) -> None:
    """A worker waits at most `seconds` (not KerasTuner's hour) for an unreachable chief."""
    from keras_tuner.src.distribute import oracle_client

    oracle_client.TIMEOUT = max(30.0, float(seconds))


class ChiefTimeout(IslesbenchError):
    """The distributed chief heard from no worker for too long; the search is incomplete."""


def serve_oracle(oracle, project_dir, worker_timeout: float, poll: float = 1.0) -> None:
    """Serve `oracle` to the workers over gRPC until every trial is done; never wait forever.

    Like keras_tuner's oracle_chief.start_server, plus: every request is timestamped per trial; a
    trial whose worker has been silent for `worker_timeout` s (no heartbeat) goes back to the retry
    queue for another worker; and when no worker runs a trial and none has called for `worker_timeout`
    s, the chief saves the Oracle and raises ChiefTimeout (re-running chief and workers resumes).

    Long because the servicer subclass closes over the request log and the timeouts that the loop
    below reads; it mirrors keras_tuner's own start_server, which keeps them together the same way.
    """

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer
    from keras_tuner.src.engine.oracle import synchronized

    ip_addr = os.environ["KERASTUNER_ORACLE_IP"]
    port = os.environ["KERASTUNER_ORACLE_PORT"]
    last_seen = {}  # trial id -> time of the last request about it
    activity = {"last": time.time()}

    class WatchedServicer(OracleServicer):
        def _seen(self, trial_id=None):
            activity["last"] = time.time()
            if trial_id:
                last_seen[trial_id] = activity["last"]

        def GetSpace(self, request, context):
            self._seen()
            return super().GetSpace(request, context)

        def CreateTrial(self, request, context):
            self._seen()
            trial = self.oracle.create_trial(request.tuner_id)
            if trial.status == trial_module.TrialStatus.STOPPED:
                self.stop_triggered = True
            elif trial.status == trial_module.TrialStatus.RUNNING:
                self._seen(trial.trial_id)
                record_assignment(project_dir, trial.trial_id, request.tuner_id)
            return protos.get_service().CreateTrialResponse(trial=trial.to_proto())

        def UpdateTrial(self, request, context):
            self._seen(request.trial_id)
            return super().UpdateTrial(request, context)

        def EndTrial(self, request, context):
            self._seen(request.trial.trial_id)
            return super().EndTrial(request, context)

        def GetTrial(self, request, context):
            self._seen(request.trial_id)
            return super().GetTrial(request, context)

        def GetBestTrials(self, request, context):
            self._seen()
            return super().GetBestTrials(request, context)

    @synchronized
    def requeue_silent(oracle_, now):
        """Hand trials of silent workers back to the retry queue; returns [(tuner id, trial id)]."""
        dropped = []
        for tuner_id, trial in list(oracle_.ongoing_trials.items()):
            if now - last_seen.get(trial.trial_id, now) > worker_timeout:
                oracle_.ongoing_trials.pop(tuner_id)
                oracle_.tuner_ids.discard(tuner_id)
                if trial.trial_id not in oracle_._retry_queue:
                    oracle_._retry_queue.append(trial.trial_id)
                dropped.append((tuner_id, trial.trial_id))
        if dropped:
            oracle_.save()
        return dropped

    @synchronized
    def state(oracle_):
        return len(oracle_.ongoing_trials), len(oracle_.tuner_ids), len(oracle_._retry_queue), len(oracle_.end_order)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = WatchedServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if server.add_insecure_port(f"{ip_addr}:{port}") == 0:
        raise IslesbenchError(f"the chief could not listen on {ip_addr}:{port} (port in use?)")
    server.start()
    print(f"chief: serving the oracle on {ip_addr}:{port}; waiting for workers "
          f"(timeout {worker_timeout:.0f} s without any worker)", flush=True)
    for trial in oracle.ongoing_trials.values():
        last_seen[trial.trial_id] = time.time()
    try:
        while True:
            time.sleep(poll)
            now = time.time()
            for tuner_id, trial_id in requeue_silent(oracle, now):
                activity["last"] = now  # give the other workers a full timeout to pick the trial up
                print(f"chief: worker {tuner_id} has been silent for more than {worker_timeout:.0f} s while "
                      f"running trial {trial_id}; presumed dead, trial {trial_id} is handed back for retry "
                      f"(its finished folds and epoch checkpoints are kept)", flush=True)
            ongoing, tuners, retry, ended = state(oracle)
            idle = now - activity["last"]
            if servicer.stop_triggered and not ongoing and not retry and (not tuners or idle > worker_timeout):
                break  # every trial ended and the workers were told to stop
            if not ongoing and idle > worker_timeout:
                oracle.save()
                raise ChiefTimeout(
                    f"the chief heard from no worker for {idle:.0f} s (--worker-timeout {worker_timeout:.0f}) "
                    f"with {ended} trial(s) ended and {retry} waiting for a retry; start workers with the same "
                    f"command and KERASTUNER_TUNER_ID=tuner0, tuner1, ... (oracle at {ip_addr}:{port}), or "
                    f"re-run to resume")
    finally:
        server.stop(grace=2)
