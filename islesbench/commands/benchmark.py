"""Run the paper's comparison grid over all folds, then the ensemble, then write the report.

Each cell is an ordinary `islesbench run`, started in its own child process (exactly the command recorded
for it in RUNS/benchmark.json), its output in RUNS/logs/<cell>.log (appended on reruns); `--jobs N` runs up
to N cells at once, each with cores // N CPU threads and, when GPUs are visible, one GPU. `islesbench run`
resumes, and skips the folds that are already done, so the same command again continues an interrupted
benchmark, and a crashed cell from its last finished epoch. A cell that cannot run (ImageNet weights absent
offline, say: its child's one-line error, exit 2) is recorded as not run, with the reason and the exact
`islesbench run ...` command that would run it; a child that dies by a signal (a segfault) or exits with
any other status is recorded as crashed, with the signal or status, its log and its command. Either way
the grid goes on. One progress line (cells done, running, crashed, elapsed, ETA) is kept current on a
terminal and printed as plain lines elsewhere; the cells' own output (Keras' epoch lines) goes only to
their logs unless --verbose. The self-supervised pretraining of "selfsup" cells runs first, fold by fold,
each in its own child process too (RUNS/logs/pretraining-selfsup.log), on this machine. `--executor ray` runs each cell as a Ray task on a cluster instead
(islesbench/grid/ray_executor.py; --address, --cell-cpus, --cell-gpus): OUT must be shared storage.

Exit status: 0 when every cell ended without crashing (cells that could not run are reported, not
failures), 3 when any cell or the pretraining crashed (the rest of the grid, the ensemble and the report still ran; run the
same command again to resume), 1 when a step in this process failed (the ensemble), 2 for bad input. `--seeds N` repeats every cell
with training seeds 0..N-1 on the same folds (seed k > 0 runs into `<name>-seed<k>`).

The ensemble averages validation probability maps, and its members are never chosen on the cases it is
scored on: by default (nested) the cases of fold k are averaged over the top-k configurations ranked by
their mean Dice on the *other* folds' cases, so each fold may have its own members (recorded per fold);
`--members a,b,c` takes a list fixed before anything ran. Status and timings go to RUNS/benchmark.json;
the report to RUNS/report/ (or --report-out).

Data efficiency: `--train-fraction 0.25,0.5,1.0` (or the grid's "train_fractions") runs every learned cell
on those shares of each fold's training patients (seeded, nested; islesbench/data/fractions.py), validated on
the whole fold; the ensemble is made of the full-data cells. Cells with "pretrained": "selfsup" first get
their per-fold self-supervised encoders (islesbench/grid/selfsup_cells.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from islesbench import layouts
from islesbench.config import PRECISIONS, PROFILES, parse_fold
from islesbench.data.fractions import parse_fractions
from islesbench.data_prep.prepare import resolve_prepared
from islesbench.errors import IslesbenchError
from islesbench.grid.cell_process import CRASHED, DONE, FAILED
from islesbench.grid.grid_file import benchmark_record_path, load_grid, merge_overrides
from islesbench.grid.progress import Progress
from islesbench.grid.runner import run_benchmark
from islesbench.reports.report import build_report
from islesbench.reports.results_reader import read_run

CRASHED_EXIT = 3  # a cell's (or the pretraining's) child died by a signal or exited with a status other than 0 and 2


def configure_parser(parser) -> None:
    """Arguments of `islesbench benchmark`."""
    parser.add_argument("--data", required=True, help="raw ISLES-layout cohort or prepared directory")
    parser.add_argument("--profile", choices=PROFILES, default="quick", help="quick (2-core CPU) or paper (GPU)")
    parser.add_argument("--out", default="runs", help="runs folder: one sub-folder per configuration")
    parser.add_argument("--grid", default=None, help="grid file (JSON) replacing the paper's grid; see islesbench/grid/grid_file.py")
    parser.add_argument("--folds", type=int, default=5, help="number of cross-validation folds")
    parser.add_argument("--fold", default="all", help="fold to run (0-based), or all")
    parser.add_argument("--force", action="store_true", help="re-run folds that are already done")
    parser.add_argument("--seeds", type=int, default=1,
                        help="repeat every configuration with training seeds 0..N-1 on the same folds")
    parser.add_argument("--members", default=None,
                        help="comma-separated configuration names of the grid (checked before anything runs): an "
                             "ensemble fixed before anything ran (default: nested top-k selection per fold)")
    parser.add_argument("--train-fraction", default=None, metavar="F1,F2,...",
                        help="train every learned cell on these shares of each fold's training patients "
                             "(e.g. 0.25,0.5,1.0; replaces the grid's train_fractions)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="train.precision of every cell (default auto: bfloat16 where the hardware runs it "
                             "natively); runs of another precision need their own --out")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="cells run at once, each in its own child process with cores // N CPU threads (and "
                             "one GPU each, round-robin, when GPUs are visible); the folds of a cell stay in "
                             "one child, in order")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="local: child processes on this machine (--jobs at once); ray: each cell a Ray task "
                             "on a Ray cluster (--address), retried when its node is lost; OUT must then be "
                             "shared storage that every node can write")
    parser.add_argument("--address", default=None, metavar="HOST:PORT|auto",
                        help="with --executor ray: the Ray cluster to join (default: start a local Ray here)")
    parser.add_argument("--cell-cpus", type=float, default=1, metavar="C",
                        help="with --executor ray: CPUs per cell task (and the child's CPU threads)")
    parser.add_argument("--cell-gpus", type=float, default=0, metavar="G",
                        help="with --executor ray: GPUs per cell task (the child sees the GPUs Ray gives it)")
    parser.add_argument("--report-out", default=None, help="report folder (default: OUT/report)")
    parser.add_argument("--no-report", action="store_true", help="skip writing the report at the end")
    layouts.add_layout_argument(parser)


def run_command(args) -> int:
    """Run the grid, the ensemble and the report; print a status line per cell."""
    grid = load_grid(args.grid)
    if args.train_fraction:
        try:
            fractions = tuple(parse_fractions(args.train_fraction))
        except ValueError as exc:
            raise IslesbenchError(f"--train-fraction {args.train_fraction}: {exc}") from None
        grid = dataclasses.replace(grid, train_fractions=fractions)
    if getattr(args, "precision", None):
        grid = dataclasses.replace(grid, overrides=merge_overrides(grid.overrides, {"train": {"precision": args.precision}}))
    fold = parse_fold(args.fold, args.folds)
    if args.seeds < 1:
        raise IslesbenchError(f"--seeds must be >= 1, not {args.seeds}")
    members = [m.strip() for m in args.members.split(",") if m.strip()] if args.members else None
    if args.jobs < 1:
        raise IslesbenchError(f"--jobs must be >= 1, not {args.jobs}")
    total = sum(len(grid.cell_configs(args.profile, seed)) for seed in range(args.seeds))
    progress = Progress(total, jobs=args.jobs)
    try:
        record = run_benchmark(grid, args.data, args.out, args.profile, num_folds=args.folds, fold=fold,
                               force=args.force, seeds=args.seeds, fixed_members=members, layout=args.layout,
                               prepare=resolve_prepared, read_run=read_run, jobs=args.jobs, progress=progress,
                               verbose=getattr(args, "verbose", False),
                               executor=getattr(args, "executor", "local"), address=getattr(args, "address", None),
                               cell_cpus=getattr(args, "cell_cpus", 1), cell_gpus=getattr(args, "cell_gpus", 0))
    finally:
        progress.close()
    # the pretraining's entry ends like a cell's (done, not run, crashed with its log)
    ended = ([record["pretraining"]] if record.get("pretraining") else []) + record["cells"]
    for cell in ended:
        line = f"{cell['name']:<24} {cell['status']:<8} {_seconds(cell.get('seconds'))}"
        if cell["status"] == CRASHED:
            how = cell.get("signal", {}).get("name") or f"exit status {cell.get('exit_status')}"
            line += f"  {how}; log: {cell.get('log')}"
        elif cell["status"] != DONE:
            line += f"  {cell.get('reason', '')}"
        print(line)
    print(f"benchmark wall time {_seconds(record['wall_seconds'])}; record: {benchmark_record_path(args.out)}")
    if not args.no_report:
        out = Path(args.report_out) if args.report_out else Path(args.out) / "report"
        paths = build_report(args.out, out)
        print(f"report: {paths['report_html']}")
    # Cells that could not run (weights absent offline) are reported, not failures; crashed cells are.
    if any(c["status"] == CRASHED for c in ended):
        print(f"some cells crashed (exit status {CRASHED_EXIT}); their logs are named above; "
              "run the same command again to resume them")
        return CRASHED_EXIT
    return 1 if any(c["status"] == FAILED for c in record["cells"]) else 0


def _seconds(s) -> str:
    if s is None:
        return ""
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"
