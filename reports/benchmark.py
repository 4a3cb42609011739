"""Run the paper's comparison grid over all folds, then the ensemble, then write the report.

Each cell is an ordinary `islesbench run` (`islesbench.run.run_configuration`): it resumes, and skips the
folds that are already done, so the same command again continues an interrupted benchmark. A cell that
cannot run (ImageNet weights absent offline, say) is recorded as not run, with the reason and the exact
`islesbench run ...` command that would run it, and the grid goes on. The ensemble averages the
validation probability maps of the top-k configurations by mean Dice. Status and timings go to
RUNS/benchmark.json; the report to RUNS/report/ (or --report-out).
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
import traceback
from pathlib import Path

from islesbench import results
from islesbench.atomic import write_json_atomic
from islesbench.config import PROFILES
from islesbench.errors import IslesbenchError

from islesbench.reports.grid import Grid, benchmark_record_path, cell_overrides_path, load_grid

DONE, PARTIAL, NOT_RUN, FAILED = "done", "partial", "not run", "failed"


def configure_parser(parser) -> None:
    """Arguments of `islesbench benchmark`."""
    parser.add_argument("--data", required=True, help="raw ISLES-layout cohort or prepared directory")
    parser.add_argument("--profile", choices=PROFILES, default="quick", help="quick (2-core CPU) or paper (GPU)")
    parser.add_argument("--out", default="runs", help="runs folder: one sub-folder per configuration")
    parser.add_argument("--grid", default=None, help="grid file (JSON) replacing the paper's grid; see reports/grid.py")
    parser.add_argument("--folds", type=int, default=5, help="number of cross-validation folds")
    parser.add_argument("--fold", default="all", help="fold to run (0-based), or all")
    parser.add_argument("--force", action="store_true", help="re-run folds that are already done")
    parser.add_argument("--report-out", default=None, help="report folder (default: OUT/report)")
    parser.add_argument("--no-report", action="store_true", help="skip writing the report at the end")


def run_command(args) -> int:
    """Run the grid, the ensemble and the report; print a status line per cell."""
    grid = load_grid(args.grid)
    fold = _parse_fold(args.fold, args.folds)
    record = run_benchmark(grid, args.data, args.out, args.profile, num_folds=args.folds, fold=fold, force=args.force)
    for cell in record["cells"]:
        line = f"{cell['name']:<24} {cell['status']:<8} {_seconds(cell.get('seconds'))}"
        if cell["status"] != DONE:
            line += f"  {cell.get('reason', '')}"
        print(line)
    print(f"benchmark wall time {_seconds(record['wall_seconds'])}; record: {benchmark_record_path(args.out)}")
    if not args.no_report:
        from islesbench.reports.report import build_report

        out = Path(args.report_out) if args.report_out else Path(args.out) / "report"
        paths = build_report(args.out, out)
        print(f"report: {paths['report_html']}")
    # Cells that could not run (weights absent offline) are reported, not failures; crashed cells are.
    return 1 if any(c["status"] == FAILED for c in record["cells"]) else 0


def run_benchmark(grid: Grid, data, runs_root, profile: str, num_folds: int = 5, fold="all",
                  force: bool = False, run_configuration=None, ensemble_runs=None) -> dict:
    """Run every cell of `grid`, then its ensemble; return (and keep writing) the benchmark record.

    `run_configuration` and `ensemble_runs` default to islesbench.run's and islesbench.ensemble's; tests
    pass stand-ins.
    """
    if run_configuration is None:
        from islesbench.run import run_configuration
    runs_root = Path(runs_root)
    runs_root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    record = {
        "profile": profile,
        "data": str(data),
        "runs_root": str(runs_root),
        "num_folds": num_folds,
        "fold": fold,
        "grid": [c.name for c, _ in grid.cell_configs(profile)],
        "ensemble_top_k": grid.ensemble.top_k if grid.ensemble else None,
        "started": _now(),
        "finished": None,
        "wall_seconds": None,
        "cells": [],
    }
    record_path = benchmark_record_path(runs_root)
    requested = list(range(num_folds)) if fold == "all" else [int(fold)]

    for cell, config in grid.cell_configs(profile):
        overrides = grid.cell_overrides(cell)
        config_file = None
        if overrides:
            config_file = cell_overrides_path(runs_root, config.name)
            write_json_atomic(config_file, overrides)
        entry = {
            "name": config.name,
            "kind": "run",
            "arch": cell.arch,
            "loss": None if cell.arch == "threshold" else cell.loss,
            "pretrained": cell.pretrained,
            "run_dir": str(results.run_dir(runs_root, config.name)),
            "command": cell.run_command(data, profile, runs_root, num_folds, fold, config_file,
                                        seed=config.train.seed),
        }
        done_before = _done_folds(runs_root, config.name, requested)
        t0 = time.monotonic()
        try:
            run_configuration(config, data, runs_root, folds="all" if fold == "all" else [fold],
                              num_folds=num_folds, force=force)
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
        record["cells"].append(entry)
        _write_record(record_path, record, started)

    if grid.ensemble is not None:
        record["cells"].append(_run_ensemble(grid, record["cells"], runs_root, ensemble_runs))
    record["finished"] = _now()
    _write_record(record_path, record, started)
    return record


def choose_ensemble_members(cells: list[dict], runs_root, top_k: int) -> tuple[list[str], str | None]:
    """Names of the top-k finished learned configurations by mean validation Dice, or a reason why none."""
    from islesbench.reports.report import read_run

    scored = []
    for cell in cells:
        if cell["status"] != DONE or cell.get("arch") == "threshold":
            continue
        run = read_run(results.run_dir(runs_root, cell["name"]))
        if run is not None and run.rows:
            scored.append((run.mean("dice"), cell["name"]))
    scored.sort(key=lambda s: (-s[0], s[1]))
    if len(scored) < 2:
        return [], (f"an ensemble needs at least 2 finished learned configurations; {len(scored)} finished")
    return [name for _, name in scored[:top_k]], None


def _run_ensemble(grid: Grid, cells: list[dict], runs_root: Path, ensemble_runs) -> dict:
    ens = grid.ensemble
    out_dir = results.run_dir(runs_root, ens.run_name)
    members, reason = choose_ensemble_members(cells, runs_root, ens.top_k)
    entry = {"name": ens.run_name, "kind": "ensemble", "top_k": ens.top_k, "members": members,
             "run_dir": str(out_dir)}
    names = members or [c["name"] for c in cells if c.get("arch") != "threshold"][: ens.top_k]
    entry["command"] = " ".join(
        ["islesbench", "ensemble", *(str(results.run_dir(runs_root, n)) for n in names), "--out", str(out_dir)]
    )
    if reason:
        entry.update(status=NOT_RUN, reason=reason, seconds=0.0)
        return entry
    if ensemble_runs is None:
        from islesbench.ensemble import ensemble_runs
    t0 = time.monotonic()
    try:
        ensemble_runs([results.run_dir(runs_root, n) for n in members], out_dir)
        entry["status"] = DONE
        entry["note"] = "members: " + ", ".join(members)
    except IslesbenchError as exc:
        entry.update(status=NOT_RUN, reason=str(exc))
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        entry.update(status=FAILED, reason=f"{type(exc).__name__}: {exc}")
    entry["seconds"] = round(time.monotonic() - t0, 1)
    return entry


def _done_folds(runs_root, name: str, requested: list[int]) -> list[int]:
    return [k for k in requested if results.fold_paths(runs_root, name, k).is_done()]


def _write_record(path, record: dict, started: float) -> None:
    record["wall_seconds"] = round(time.monotonic() - started, 1)
    write_json_atomic(path, record)


def _parse_fold(text, num_folds: int):
    if str(text) == "all":
        return "all"
    try:
        k = int(text)
    except ValueError:
        raise IslesbenchError(f"--fold must be a fold number or 'all', not {text!r}") from None
    if not 0 <= k < num_folds:
        raise IslesbenchError(f"--fold {k} is outside 0..{num_folds - 1}")
    return k


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def _seconds(s) -> str:
    if s is None:
        return ""
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"
