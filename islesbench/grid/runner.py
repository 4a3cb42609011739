"""Run the paper's comparison grid over all folds, then the ensemble (`run_benchmark`; the `islesbench
benchmark` command is islesbench.commands.benchmark, which also writes the report).

Each cell runs in its own child process: exactly the stand-alone command recorded for it in
benchmark.json ("command", `islesbench run ...`), started as `python -m islesbench run ...` (argv, no shell)
with islesbench.runtime.child_env's environment, its share of the CPU threads and (when GPUs are visible)
one GPU, its output appended to RUNS/logs/<cell>.log. `jobs` cells run at once (a pool of threads, each
waiting on one child); the folds of one cell stay in its child, in order. How a child ended decides the
cell's status: exit 0 -> done (partial when a requested fold did not finish), exit 2 (islesbench's one-line
error, e.g. ImageNet weights absent offline) -> not run with that line as the reason, death by a signal or
any other exit status -> crashed, with the signal or exit status, the log and the command; the grid goes on.
`islesbench run` resumes and skips finished folds, so the same call again continues an interrupted or
crashed benchmark from the last committed epoch. `seeds` repeats every cell with training seeds 0..N-1 on
the same folds (seed k > 0 runs into `<name>-seed<k>`). Tests pass `run_configuration`, a stand-in trainer
that runs in this process instead (one cell after the other).

Self-supervised pretraining runs before the cells, fold by fold, each as a child process like a cell's
(`islesbench pretrain --exclude-fold k`, all the threads, on this machine whichever the executor; its
output in RUNS/logs/pretraining-selfsup.log); a crash in it is recorded and costs only the "selfsup" cells.
The ensemble and the report run in this process, the ensemble only after every cell has ended.

The ensemble averages validation probability maps, and its members are never chosen on the cases it is
scored on: by default (nested) the cases of fold k are averaged over the top-k configurations ranked by
their mean Dice on the *other* folds' cases, so each fold may have its own members (recorded per fold);
`fixed_members` is a list fixed before anything ran. Only the grid's own cells are ranked: a row imported
with `islesbench import` (external) is a member only when `fixed_members` names it. Status and timings go to RUNS/benchmark.json.

Data efficiency: the grid's "train_fractions" run every learned cell on those shares of each fold's
training patients (seeded, nested; islesbench/data/fractions.py), validated on the whole fold; the ensemble
is made of the full-data cells. Cells with "pretrained": "selfsup" first get their per-fold
self-supervised encoders (islesbench/grid/selfsup_cells.py).

The stages above this package reach it as callables the command passes: `prepare` (the --data folder to
prepared data: islesbench.data_prep.prepare.resolve_prepared) and `read_run` (a finished cell's per-case
results: islesbench.reports.results_reader.read_run).
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import math
import queue
import shlex
import sys
import time
import traceback
from pathlib import Path

from islesbench.atomic import write_json_atomic
from islesbench.errors import IslesbenchError
from islesbench.grid.cell_process import (DONE, FAILED, NOT_RUN, PARTIAL, cell_log_path,
                                          default_child_command, run_child_process)
from islesbench.grid.grid_file import Grid, benchmark_record_path, cell_overrides_path
from islesbench.grid.progress import NoProgress
from islesbench.grid.ray_executor import RayCells
from islesbench.grid.selfsup_cells import SELFSUP, run_selfsup_pretraining
from islesbench.inference import ensemble
from islesbench.runtime import child_env
from islesbench.storage import provenance, run_layout
from islesbench.storage.selection import member_flags


def run_benchmark(grid: Grid, data, runs_root, profile: str, num_folds: int = 5, fold="all",
                  force: bool = False, run_configuration=None, ensemble_runs=None, seeds: int = 1,
                  fixed_members: list | None = None, layout: str | None = None, *, prepare, read_run,
                  jobs: int = 1, child_command: list[str] | None = None, progress=None,
                  verbose: bool = False, gpus: list[str] | None = None, executor: str = "local",
                  address: str | None = None, cell_cpus: float = 1, cell_gpus: float = 0,
                  max_retries: int = 3) -> dict:
    """Run every cell of `grid` (for each of `seeds` training seeds), then its ensemble; return (and keep
    writing) the benchmark record.

    `prepare(data, runs_root, num_folds, seed, layout)` -> PreparedData has the signature of
    islesbench.data_prep.prepare.resolve_prepared (a raw cohort is prepared once into RUNS/prepared, here,
    before any child starts, and the children reuse it); `read_run(run folder)` is
    islesbench.reports.results_reader.read_run. Cells run as child processes, `jobs` at once;
    `child_command` replaces `python -m islesbench` in their argv (tests wrap the child), `gpus` the GPUs
    found (islesbench.runtime.child_env.visible_gpus), `progress` is an islesbench.grid.progress.Progress,
    and `verbose` copies the children's output to the console as well as to their logs.
    `run_configuration` (a stand-in trainer, tests only) runs the cells in this process instead;
    `ensemble_runs` defaults to islesbench.inference.ensemble's.

    `executor` "ray" submits every cell as a Ray task instead (islesbench.grid.ray_executor: `address` of
    the cluster, None for a local Ray; `cell_cpus`, `cell_gpus` per task; a task lost with its node is
    retried `max_retries` times); `jobs` and `gpus` are then Ray's business, and the runs folder must be
    shared storage (checked before any cell). The statuses come from the same child_outcome.

    Long only with this docstring: the body is the phases in order (record, pretraining, cells, ensemble).
    """
    if jobs < 1:
        raise IslesbenchError(f"--jobs must be >= 1, not {jobs}")
    if executor not in ("local", "ray"):
        raise IslesbenchError(f"--executor must be local or ray, not {executor}")
    if fixed_members:
        check_fixed_members(grid, profile, fixed_members, runs_root)
    runs_root = Path(runs_root)
    runs_root.mkdir(parents=True, exist_ok=True)
    progress = progress or NoProgress()
    started = time.monotonic()
    record = _new_record(grid, data, runs_root, profile, num_folds, fold, seeds, fixed_members, jobs, executor)
    record_path = benchmark_record_path(runs_root)
    requested = list(range(num_folds)) if fold == "all" else [int(fold)]
    pretraining = None
    if grid.uses_selfsup():
        run_child = _pretraining_child(child_command, gpus, progress.write if verbose else None)
        pretraining = _pretrain(grid, data, runs_root, profile, requested, num_folds, layout, force, prepare,
                                run_child, progress.write)
        record["pretraining"] = pretraining
        _write_record(record_path, record, started)

    cells = [(c, cfg) for seed in range(seeds) for c, cfg in grid.cell_configs(profile, seed, runs_root)]
    entries = [_cell_entry(grid, cell, config, data, runs_root, profile, num_folds, fold, layout)
               for cell, config in cells]
    blocked = [_blocked(cell, pretraining) for cell, _ in cells]
    finished: list[dict | None] = [None] * len(cells)

    def publish(i, entry):
        finished[i] = entry
        record["cells"] = [e for e in finished if e is not None]  # grid order
        _write_record(record_path, record, started)

    if run_configuration is not None:  # a stand-in trainer (tests): in this process, one cell after the other
        def train_cell(i):
            cell, config = cells[i]
            prepared = prepare(data, runs_root, num_folds, 0, layout)
            extra = {"tuned": cell.tuned()} if cell.hparams else {}  # per-fold hyperparameters (nested)
            run_configuration(config, prepared, runs_root, folds="all" if fold == "all" else [fold], force=force,
                              **extra)
            return {}

        for i in range(len(cells)):
            publish(i, _run_cell(entries[i], runs_root, requested, force, blocked[i], train_cell, i, progress))
    else:
        if any(reason is None for reason in blocked):
            try:  # once, before the children, which would otherwise prepare the same folder at once
                prepare(data, runs_root, num_folds, 0, layout)
            except IslesbenchError:
                pass  # each child meets the same error and reports it as its cell's reason
        cluster = None
        if executor == "ray":
            cluster = RayCells(runs_root, address=address, cell_cpus=cell_cpus, cell_gpus=cell_gpus,
                               max_retries=max_retries, child_command=child_command)
            cluster.start()
            workers, run_child = max(1, len(cells)), _ray_child(cluster, entries, runs_root)
        else:
            gpus = child_env.visible_gpus() if gpus is None else gpus
            prefix = list(child_command or default_child_command())
            workers, run_child = jobs, _local_child(entries, runs_root, jobs, gpus, prefix,
                                                    progress.write if verbose else None)
        try:
            _run_pool(workers, len(cells), publish, lambda i: _run_cell(entries[i], runs_root, requested, force,
                                                                         blocked[i], run_child, i, progress))
        finally:
            if cluster is not None:
                cluster.close()
    progress.close()

    if grid.ensemble is not None:
        record["cells"].append(_run_ensemble(grid, record["cells"], runs_root, ensemble_runs, fixed_members,
                                             read_run))
    record["finished"] = _now()
    _write_record(record_path, record, started)
    return record


def check_fixed_members(grid: Grid, profile: str, members: list, runs_root) -> None:
    """Refuse `--members` names that are not runs this benchmark makes (its learned full-data configurations
    of seed 0, the ones the ensemble averages) nor rows imported into RUNS (`islesbench import`), before
    anything trains: one line naming them and the choices."""
    names = [config.name for cell, config in grid.cell_configs(profile, 0, runs_root)
             if cell.learned and config.data.train_fraction >= 1]
    names += [m for m in members if m not in names and _is_imported(run_layout.run_dir(runs_root, m))]
    unknown = [m for m in members if m not in names]
    if unknown:
        raise IslesbenchError(f"--members {','.join(members)}: {', '.join(unknown)} "
                              f"{'is not a run' if len(unknown) == 1 else 'are not runs'} of this grid "
                              f"(its configurations: {', '.join(names) or 'none'})")


def _pretrain(grid: Grid, data, runs_root: Path, profile: str, requested: list, num_folds: int, layout, force: bool,
              prepare, run_child, announce) -> dict:
    """The self-supervised pretraining of the grid's "selfsup" cells (before any cell); its record entry."""
    config_file = None
    if grid.pretraining.overrides:
        config_file = cell_overrides_path(runs_root, "pretraining")
        write_json_atomic(config_file, grid.pretraining.overrides)
    return run_selfsup_pretraining(grid.pretraining, data, runs_root, profile, requested, num_folds, layout=layout,
                                   force=force, config_file=config_file, prepare=prepare, run_child=run_child,
                                   announce=announce)


def _pretraining_child(child_command, gpus, echo):
    """run_child(argv tail, log, command) for the pretraining: one child at a time with every CPU thread (the
    cells wait for it) and the first GPU, on this machine."""
    prefix = list(child_command or default_child_command())
    gpus = child_env.visible_gpus() if gpus is None else gpus

    def run_child(tail, log_path, command):
        return run_child_process(prefix + tail, child_env.cell_env(1, 0, gpus), log_path, command, echo=echo,
                                 label="pretraining")
    return run_child


def _blocked(cell, pretraining: dict | None) -> str | None:
    """Why `cell` cannot start (its self-supervised encoders did not finish), or None."""
    if cell.pretrained == SELFSUP and pretraining and pretraining["status"] != DONE:
        return (f"its self-supervised pretraining did not finish: {pretraining.get('reason')}; "
                f"pretrain with: {pretraining.get('command', 'islesbench pretrain')}")
    return None


def _run_pool(workers: int, count: int, publish, run_cell) -> None:
    """run_cell(i) for i < count, `workers` at a time; publish(i, entry) as each ends."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="islesbench-cell") as pool:
        futures = {pool.submit(run_cell, i): i for i in range(count)}
        for future in concurrent.futures.as_completed(futures):
            publish(futures[future], future.result())


def _new_record(grid: Grid, data, runs_root: Path, profile: str, num_folds: int, fold, seeds: int, fixed_members,
                jobs: int, executor: str) -> dict:
    """The benchmark record before any cell ran: what was asked, the provenance, the start time."""
    return {
        "profile": profile,
        "data": str(data),
        "runs_root": str(runs_root),
        "num_folds": num_folds,
        "fold": fold,
        "grid": [cfg.name for _, cfg in grid.cell_configs(profile)],
        "seeds": seeds,
        "train_fractions": list(grid.train_fractions),
        "ensemble_top_k": grid.ensemble.top_k if grid.ensemble else None,
        "ensemble_selection": None if grid.ensemble is None else ("fixed" if fixed_members else "nested"),
        "jobs": jobs,
        "executor": executor,
        "provenance": provenance.provenance(),
        "started": _now(),
        "finished": None,
        "wall_seconds": None,
        "cells": [],
    }


def _ray_child(cluster, entries: list, runs_root: Path):
    """run_child(i) of the Ray executor: cell i as a task on the cluster (one parent thread waits on each)."""
    def run_child(i):
        return cluster.run(shlex.split(entries[i]["command"])[1:], cell_log_path(runs_root, entries[i]["name"]),
                           entries[i]["command"])
    return run_child


def _local_child(entries: list, runs_root: Path, jobs: int, gpus: list, prefix: list, echo):
    """run_child(i) of the local executor: cell i as a child process in one of `jobs` slots (its share of
    the threads, its GPU)."""
    slots: queue.Queue = queue.Queue()
    for slot in range(jobs):
        slots.put(slot)

    def run_child(i):
        slot = slots.get()
        try:
            argv = prefix + shlex.split(entries[i]["command"])[1:]
            return run_child_process(argv, child_env.cell_env(jobs, slot, gpus),
                                     cell_log_path(runs_root, entries[i]["name"]), entries[i]["command"],
                                     echo=echo, label=entries[i]["name"])
        finally:
            slots.put(slot)
    return run_child


def _cell_entry(grid: Grid, cell, config, data, runs_root, profile: str, num_folds: int, fold, layout) -> dict:
    """A cell's entry of the benchmark record before it runs (its overrides file written): name, what it is, the command."""
    overrides = grid.cell_overrides(cell)
    config_file = None
    if overrides:
        config_file = cell_overrides_path(runs_root, config.name)
        write_json_atomic(config_file, overrides)
    return {
        "name": config.name,
        "seed": config.train.seed,
        "kind": "run",
        "arch": cell.arch,
        "loss": None if cell.arch == "threshold" else cell.loss,
        "pretrained": cell.pretrained,
        "train_fraction": config.data.train_fraction,
        "run_dir": str(run_layout.run_dir(runs_root, config.name)),
        "command": cell.run_command(data, profile, runs_root, num_folds, fold, config_file,
                                    seed=config.train.seed, fraction=config.data.train_fraction, layout=layout),
    }


def _run_cell(entry: dict, runs_root, requested: list, force: bool, blocked: str | None, execute, index,
              progress) -> dict:
    """Run one cell (`execute(index)` -> the status fields the run decided, {} when it ended normally); its
    entry of the benchmark record: status (done, partial, not run with the reason, crashed, failed), seconds,
    folds done and trained, the command."""
    entry = dict(entry)
    done_before = _done_folds(runs_root, entry["name"], requested)
    progress.start(entry["name"])
    t0 = time.monotonic()
    try:
        if blocked:
            raise IslesbenchError(blocked)
        entry.update(execute(index))
    except IslesbenchError as exc:
        entry.update(status=NOT_RUN, reason=str(exc))
    except Exception as exc:  # one broken cell must not lose the rest of a long grid
        traceback.print_exc(file=sys.stderr)
        entry.update(status=FAILED, reason=f"{type(exc).__name__}: {exc}")
    entry["seconds"] = round(time.monotonic() - t0, 1)
    done_after = _done_folds(runs_root, entry["name"], requested)
    entry["folds_done"] = done_after
    entry["folds_trained"] = len(set(done_after) - set(done_before)) if not force else len(done_after)
    if "status" not in entry:
        missing = sorted(set(requested) - set(done_after))
        if missing:
            entry.update(status=PARTIAL, reason=f"fold(s) {missing} did not finish")
        else:
            entry["status"] = DONE
    progress.finish(entry["name"], entry["status"], entry["seconds"])
    return entry


def _learned_runs(cells: list[dict], runs_root, read_run) -> dict:
    """name -> {case: (fold, Dice)} of the finished learned seed-0 configurations (`read_run`: as run_benchmark's)."""
    out = {}
    for cell in cells:
        if cell["status"] != DONE or cell.get("arch") == "threshold" or cell.get("seed", 0):
            continue
        if cell.get("train_fraction", 1.0) < 1:  # the ensemble is made of the full-data configurations
            continue
        run = read_run(run_layout.run_dir(runs_root, cell["name"]))
        if run is not None and run.rows:
            out[cell["name"]] = {r["case"]: (r["fold"], r["dice"]) for r in run.rows}
    return out


def _is_imported(run_root: Path) -> bool:
    """Whether `run_root` holds predictions imported with `islesbench import`."""
    return (run_root / "config.json").is_file() and run_layout.is_external(run_layout.read_run_config(run_root))


def _external_runs(names: list, runs_root, read_run) -> dict:
    """name -> {case: (fold, Dice)} of the named run folders that hold imported predictions (`islesbench import`)."""
    out = {}
    for name in names:
        run_root = run_layout.run_dir(runs_root, name)
        if not _is_imported(run_root):
            continue
        run = read_run(run_root)
        if run is not None and run.rows:
            out[name] = {r["case"]: (r["fold"], r["dice"]) for r in run.rows}
    return out


def nested_ensemble_members(per_config: dict, top_k: int) -> tuple[dict, str | None]:
    """For every fold k: the top-k configurations by mean Dice over the cases of the *other* folds.

    `per_config` is name -> {case: (fold, Dice)}. Returns ({fold: {"members": [...], "ranking": [[name,
    mean Dice], ...]}}, None) or ({}, the reason no ensemble can be made).
    """
    if len(per_config) < 2:
        return {}, f"an ensemble needs at least 2 finished learned configurations; {len(per_config)} finished"
    folds = sorted({f for rows in per_config.values() for f, _ in rows.values()})
    chosen = {}
    for k in folds:
        scored = []
        for name, rows in per_config.items():
            other = [d for f, d in rows.values() if f != k and math.isfinite(d)]
            if other:
                scored.append((sum(other) / len(other), name))
        scored.sort(key=lambda s: (-s[0], s[1]))
        if len(scored) < 2:
            return {}, f"fold {k}: fewer than 2 configurations have results on the other folds to rank them"
        chosen[k] = {"members": [n for _, n in scored[:top_k]], "ranking": [[n, round(d, 6)] for d, n in scored]}
    return chosen, None


def _run_ensemble(grid: Grid, cells: list[dict], runs_root: Path, ensemble_runs, fixed_members, read_run) -> dict:
    ens = grid.ensemble
    out_dir = run_layout.run_dir(runs_root, ens.run_name)
    per_config = _learned_runs(cells, runs_root, read_run)
    if fixed_members:
        # Imported (external) rows are no cells: only naming them in --members makes them members.
        per_config.update(_external_runs([m for m in fixed_members if m not in per_config], runs_root, read_run))
        unknown = [m for m in fixed_members if m not in per_config]
        reason = (f"--members names configurations that did not finish: {', '.join(unknown)}" if unknown else None)
        folds = sorted({f for rows in per_config.values() for f, _ in rows.values()})
        per_fold = {} if reason else {k: {"members": list(fixed_members), "ranking": None} for k in folds}
        selection = {"method": "fixed", "description": "members fixed before anything ran (--members)"}
    else:
        per_fold, reason = nested_ensemble_members(per_config, ens.top_k)
        selection = {"method": "nested", "description": f"fold k averages the top {ens.top_k} configurations "
                     "by mean Dice on the other folds' cases (never on the cases it is scored on)"}
    entry = {"name": ens.run_name, "kind": "ensemble", "top_k": ens.top_k, "selection": selection["method"],
             "members_per_fold": {str(k): v["members"] for k, v in per_fold.items()}, "run_dir": str(out_dir)}
    if reason:
        names = fixed_members or [c["name"] for c in cells if c.get("arch") != "threshold"][: ens.top_k]
        entry.update(status=NOT_RUN, reason=reason, seconds=0.0, command=" ".join(
            ["islesbench", "ensemble", *(str(run_layout.run_dir(runs_root, n)) for n in names), "--out", str(out_dir)]))
        return entry
    entry["command"] = "; ".join(
        " ".join(["islesbench", "ensemble", *(str(run_layout.run_dir(runs_root, n)) for n in v["members"]),
                  "--out", str(out_dir)]) + f"  # fold {k}" for k, v in per_fold.items())
    if ensemble_runs is None:
        ensemble_runs = ensemble.ensemble_runs
    t0 = time.monotonic()
    record = {"selection": {**selection, "per_fold": {str(k): v for k, v in per_fold.items()}}}
    try:
        for k, v in per_fold.items():
            ensemble_runs([run_layout.run_dir(runs_root, n) for n in v["members"]], out_dir, force=True, folds=[k],
                          record=record)
        # The root config names every member used by any fold; each fold's config.json has its own.
        used = sorted({n for v in per_fold.values() for n in v["members"]})
        root = run_layout.read_run_config(out_dir)
        write_json_atomic(out_dir / "config.json", {**root, "members": used,
                                                    "member_runs": [str(run_layout.run_dir(runs_root, n).resolve())
                                                                    for n in used],
                                                    "member_flags": member_flags(
                                                        {n: run_layout.read_run_config(run_layout.run_dir(runs_root, n))
                                                         for n in used})})
        entry["status"] = DONE
        entry["note"] = f"{selection['method']} selection; members per fold: " + "; ".join(
            f"{k}: {', '.join(v['members'])}" for k, v in per_fold.items())
    except IslesbenchError as exc:
        entry.update(status=NOT_RUN, reason=str(exc))
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        entry.update(status=FAILED, reason=f"{type(exc).__name__}: {exc}")
    entry["seconds"] = round(time.monotonic() - t0, 1)
    return entry


def _done_folds(runs_root, name: str, requested: list[int]) -> list[int]:
    return [k for k in requested if run_layout.fold_paths(runs_root, name, k).is_done()]


def _write_record(path, record: dict, started: float) -> None:
    record["wall_seconds"] = round(time.monotonic() - started, 1)
    write_json_atomic(path, record)


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")

