"""Self-supervised pretraining inside the benchmark: the grid's "pretraining" block, "selfsup" cells, and
the per-fold pretraining the benchmark runs before them.

A "selfsup" cell fine-tunes fold k from an encoder pretrained (`islesbench pretrain`, Models Genesis) on
the block's cohorts and the benchmark's own cohort without fold k's validation patients, so no fold is
scored on cases its encoder has seen. The pretraining is resumable and skipped when done, like the runs;
its wall time per fold goes to benchmark.json and the report. The benchmark runs each fold's pretraining
as a child process (`islesbench pretrain --exclude-fold k`), as it runs its cells, so a crash in it costs
the "selfsup" cells, never the grid, and Keras' epoch lines go to RUNS/logs/pretraining-selfsup.log.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from islesbench.errors import IslesbenchError
from islesbench.grid.cell_process import DONE, NOT_RUN, cell_log_path
from islesbench.storage.pretrain_records import PretrainPaths, read_record

# islesbench.selfsup.pretrain imports TensorFlow at its top: it is imported inside the functions that use it,
# to keep `islesbench --help` fast.

PRETRAINING_KEYS = {"data", "include_finetune_cohort", "overrides"}
# A cell's "pretrained" value for self-supervised pretraining made per fold by the benchmark.
SELFSUP = "selfsup"
PRETRAINING_DIR = "pretraining"
PRETRAINING_LOG = "pretraining-selfsup"  # RUNS/logs/pretraining-selfsup.log


def selfsup_dir(runs_root) -> Path:
    """Where the benchmark pretrains the per-fold encoders of "selfsup" cells (islesbench/storage/pretrain_records.py's layout)."""
    return Path(runs_root) / PRETRAINING_DIR / SELFSUP


@dataclass(frozen=True)
class PretrainingBlock:
    """Self-supervised pretraining for the grid's "selfsup" cells: which cohorts, which settings."""

    data: tuple = ()
    include_finetune_cohort: bool = True
    overrides: dict = field(default_factory=dict, compare=False, hash=False)


def parse_pretraining(raw) -> tuple[PretrainingBlock | None, list[str]]:
    if not isinstance(raw, dict):
        return None, ["'pretraining' must be an object such as {\"data\": [\"unlabelled_cohort\"]}"]
    problems = [f"pretraining: unknown key {k!r} (known: {', '.join(sorted(PRETRAINING_KEYS))})"
                for k in raw if k not in PRETRAINING_KEYS]
    data = raw.get("data", [])
    if not isinstance(data, list) or not all(isinstance(d, str) and d for d in data):
        problems.append("pretraining.data must be a list of cohort folders")
        data = []
    include = raw.get("include_finetune_cohort", True)
    if not isinstance(include, bool):
        problems.append("pretraining.include_finetune_cohort must be true or false")
    if not data and include is False:
        problems.append("pretraining has no data: give pretraining.data or include the fine-tuning cohort")
    overrides = raw.get("overrides", {})
    if not isinstance(overrides, dict):
        problems.append("pretraining.overrides must be an object")
        overrides = {}
    else:
        from islesbench.selfsup.pretrain import pretrain_config

        try:
            pretrain_config("quick", [overrides])
        except IslesbenchError as exc:
            problems.append(f"pretraining.overrides: {exc}".replace("\n", " "))
    if problems:
        return None, problems
    return PretrainingBlock(data=tuple(data), include_finetune_cohort=include, overrides=overrides), []


def pretraining_command(block: PretrainingBlock, data_dirs: list, folds_of, runs_root, profile: str, num_folds: int,
                        config_file=None, exclude_fold="all", force: bool = False) -> str:
    """The `islesbench pretrain ...` command line that makes the benchmark's per-fold encoders (every fold's,
    or fold `exclude_fold`'s)."""
    parts = ["islesbench", "pretrain"]
    for d in data_dirs:
        parts += ["--data", str(d)]
    parts += ["--folds-of", str(folds_of), "--exclude-fold", str(exclude_fold), "--profile", profile,
              "--folds", str(num_folds), "--out", str(selfsup_dir(runs_root))]
    if config_file:
        parts += ["--config", str(config_file)]
    if force:
        parts.append("--force")
    return " ".join(shlex.quote(p) for p in parts)


def run_selfsup_pretraining(block: PretrainingBlock, data, runs_root, profile: str, fold_ids: list,
                            num_folds: int = 5, layout=None, force: bool = False, config_file=None, *,
                            prepare, run_child, announce=None) -> dict:
    """Pretrain the encoder of every requested fold (resuming, skipping finished ones); the benchmark's
    record of it: status, per-fold wall and training seconds, what it read, the command.

    `prepare` (data folder, runs root, num_folds, seed, layout, target=) -> PreparedData is
    islesbench.data_prep.prepare.resolve_prepared, passed down from the `benchmark` command.
    `run_child(argv after "islesbench", log path, command)` -> the status fields of
    islesbench.grid.cell_process.child_outcome runs each fold's `islesbench pretrain --exclude-fold k` as a
    child process, which resolves (prepares) the pretraining cohorts itself and says so if it cannot.
    `announce(line)` is told when each fold starts and ends.
    """
    from islesbench.selfsup import pretrain as pt

    announce = announce or (lambda line: None)
    entry = {"name": str(Path(PRETRAINING_DIR) / SELFSUP), "kind": "pretraining", "folds": {}, "status": DONE}
    t0 = time.monotonic()
    try:
        prepared = prepare(data, runs_root, num_folds, 0, layout)  # the cohort the cells fine-tune on
        data_dirs = list(block.data) + ([str(prepared.root)] if block.include_finetune_cohort else [])
        entry["command"] = pretraining_command(block, data_dirs, prepared.root, runs_root, profile, num_folds,
                                               config_file)
        config = pt.pretrain_config(profile, [block.overrides])
        entry.update(method=config.method, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch,
                     data=data_dirs)
    except IslesbenchError as exc:
        entry.update(status=NOT_RUN, reason=str(exc), seconds=round(time.monotonic() - t0, 1))
        return entry
    for k in fold_ids:
        t_fold = time.monotonic()
        announce(f"pretraining fold {k}: started")
        command = pretraining_command(block, data_dirs, prepared.root, runs_root, profile, num_folds, config_file,
                                      exclude_fold=k, force=force)
        failure = run_child(shlex.split(command)[1:], cell_log_path(runs_root, PRETRAINING_LOG), command)
        output = PretrainPaths(selfsup_dir(runs_root)).output(k)
        if not failure and not output.is_file():
            failure = {"status": NOT_RUN, "reason": f"its child ended without writing {output}"}
        seconds = round(time.monotonic() - t_fold, 1)
        if failure:
            entry["folds"][str(k)] = {**failure, "seconds": seconds}
            entry.update({key: v for key, v in failure.items() if key not in ("reason", "command")},
                         reason=f"fold {k}: {failure['reason']}")
            announce(f"pretraining fold {k}: {failure['status']} after {seconds:.0f} s: {failure['reason']}")
            break
        record = read_record(output) or {}
        entry["folds"][str(k)] = {"status": DONE, "seconds": seconds,
                                  "training_seconds": record.get("seconds"), "file": str(output),
                                  "cases": sum(c["n_cases"] for c in record.get("cohorts", [])),
                                  "excluded_cases": len((record.get("excluded") or {}).get("cases", []))}
        announce(f"pretraining fold {k}: done in {seconds:.0f} s")
    entry["seconds"] = round(time.monotonic() - t0, 1)
    return entry
