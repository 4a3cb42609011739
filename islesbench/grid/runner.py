"""Run the paper's comparison grid over all folds, then the ensemble (`run_benchmark`; the `islesbench
benchmark` command is islesbench.commands.benchmark, which also writes the report).

Each cell is an ordinary `islesbench run` (`islesbench.training.cross_validation.run_configuration`): it
resumes, and skips the folds that are already done, so the same call again continues an interrupted
benchmark. A cell that cannot run (ImageNet weights absent offline, say) is recorded as not run, with the
reason and the exact `islesbench run ...` command that would run it, and the grid goes on. `seeds` repeats
every cell with training seeds 0..N-1 on the same folds (seed k > 0 runs into `<name>-seed<k>`).

The ensemble averages validation probability maps, and its members are never chosen on the cases it is
scored on: by default (nested) the cases of fold k are averaged over the top-k configurations ranked by
their mean Dice on the *other* folds' cases, so each fold may have its own members (recorded per fold);
`fixed_members` is a list fixed before anything ran. Status and timings go to RUNS/benchmark.json.

Data efficiency: the grid's "train_fractions" run every learned cell on those shares of each fold's
training patients (seeded, nested; islesbench/data/fractions.py), validated on the whole fold; the ensemble
is made of the full-data cells. Cells with "pretrained": "selfsup" first get their per-fold
self-supervised encoders (islesbench/grid/selfsup_cells.py).

The stages above this package reach it as callables the command passes: `prepare` (the --data folder to
prepared data: islesbench.data_prep.prepare.resolve_prepared) and `read_run` (a finished cell's per-case
results: islesbench.reports.results_reader.read_run).
"""

from __future__ import annotations

import datetime as _dt
import math
import sys
import time
import traceback
from pathlib import Path

from islesbench.atomic import write_json_atomic
from islesbench.errors import IslesbenchError
from islesbench.grid.grid_file import Grid, benchmark_record_path, cell_overrides_path
from islesbench.grid.selfsup_cells import SELFSUP, run_selfsup_pretraining
from islesbench.inference import ensemble
from islesbench.storage import provenance, run_layout
from islesbench.training import cross_validation

DONE, PARTIAL, NOT_RUN, FAILED = "done", "partial", "not run", "failed"


def run_benchmark(grid: Grid, data, runs_root, profile: str, num_folds: int = 5, fold="all",
                  force: bool = False, run_configuration=None, ensemble_runs=None, seeds: int = 1,
                  fixed_members: list | None = None, layout: str | None = None, *, prepare, read_run) -> dict:
    """Run every cell of `grid` (for each of `seeds` training seeds), then its ensemble; return (and keep
    writing) the benchmark record.

    `prepare(data, runs_root, num_folds, seed, layout)` -> PreparedData has the signature of
    islesbench.data_prep.prepare.resolve_prepared (a raw cohort is prepared once into RUNS/prepared and
    reused); `read_run(run folder)` is islesbench.reports.results_reader.read_run. `run_configuration` and
    `ensemble_runs` default to islesbench.training.cross_validation's and islesbench.inference.ensemble's;
    tests pass stand-ins.
    """
    train = run_configuration or cross_validation.run_configuration
    runs_root = Path(runs_root)
    runs_root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    record = {
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
        "provenance": provenance.provenance(),
        "started": _now(),
        "finished": None,
        "wall_seconds": None,
        "cells": [],
    }
    record_path = benchmark_record_path(runs_root)
    requested = list(range(num_folds)) if fold == "all" else [int(fold)]
    pretraining = None
    if grid.uses_selfsup():
        config_file = None
        if grid.pretraining.overrides:
            config_file = cell_overrides_path(runs_root, "pretraining")
            write_json_atomic(config_file, grid.pretraining.overrides)
        pretraining = run_selfsup_pretraining(grid.pretraining, data, runs_root, profile, requested, num_folds,
                                              layout=layout, force=force, config_file=config_file, prepare=prepare)
        record["pretraining"] = pretraining
        _write_record(record_path, record, started)

    def train_cell(config, extra):
        if run_configuration is None:  # the configuration's own faults before any data work, as `run` has them
            cross_validation.check_configuration(config)
        prepared = prepare(data, runs_root, num_folds, 0, layout)
        train(config, prepared, runs_root, folds="all" if fold == "all" else [fold], force=force, **extra)

    cells = [(c, cfg) for seed in range(seeds) for c, cfg in grid.cell_configs(profile, seed, runs_root)]
    for cell, config in cells:
        entry = _run_cell(grid, cell, config, data, runs_root, profile, num_folds, fold, requested, force,
                          pretraining, train_cell)
        record["cells"].append(entry)
        _write_record(record_path, record, started)

    if grid.ensemble is not None:
        record["cells"].append(_run_ensemble(grid, record["cells"], runs_root, ensemble_runs, fixed_members,
                                             read_run))
    record["finished"] = _now()
    _write_record(record_path, record, started)
    return record


def _run_cell(grid: Grid, cell, config, data, runs_root, profile: str, num_folds: int, fold, requested: list,
              force: bool, pretraining, train_cell) -> dict:
    """Train one cell (`train_cell(config, extra run_configuration arguments)`); its entry of the benchmark record:
    status (done, partial, not run with the reason, failed), seconds, folds done and trained, the command."""
    overrides = grid.cell_overrides(cell)
    config_file = None
    if overrides:
        config_file = cell_overrides_path(runs_root, config.name)
        write_json_atomic(config_file, overrides)
    entry = {
        "name": config.name,
        "seed": config.train.seed,
        "kind": "run",
        "arch": cell.arch,
        "loss": None if cell.arch == "threshold" else cell.loss,
        "pretrained": cell.pretrained,
        "train_fraction": config.data.train_fraction,
        "run_dir": str(run_layout.run_dir(runs_root, config.name)),
        "command": cell.run_command(data, profile, runs_root, num_folds, fold, config_file,
                                    seed=config.train.seed, fraction=config.data.train_fraction),
    }
    done_before = _done_folds(runs_root, config.name, requested)
    t0 = time.monotonic()
    try:
        if cell.pretrained == SELFSUP and pretraining and pretraining["status"] != DONE:
            raise IslesbenchError(f"its self-supervised pretraining did not finish: {pretraining.get('reason')}; "
                                  f"pretrain with: {pretraining.get('command', 'islesbench pretrain')}")
        train_cell(config, {"tuned": cell.tuned()} if cell.hparams else {})  # per-fold hyperparameters (nested)
    except IslesbenchError as exc:
        entry.update(status=NOT_RUN, reason=str(exc))
    except Exception as exc:  # one broken cell must not lose the rest of a long grid
        traceback.print_exc(file=sys.stderr)
        entry.update(status=FAILED, reason=f"{type(exc).__name__}: {exc}")
    entry["seconds"] = round(time.monotonic() - t0, 1)
    done_after = _done_folds(runs_root, config.name, requested)
    entry["folds_done"] = done_after
    entry["folds_trained"] = len(set(done_after) - set(done_before)) if not force else len(done_after)
    if "status" not in entry:
        missing = sorted(set(requested) - set(done_after))
        if missing:
            entry.update(status=PARTIAL, reason=f"fold(s) {missing} did not finish")
        else:
            entry["status"] = DONE
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
                                                                    for n in used]})
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

