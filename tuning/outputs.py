"""What a search leaves in its --out folder, read from KerasTuner's own Oracle state.

    OUT/best_hparams.json   the best completed trial: config_overrides (nested, what `islesbench run
                            --hparams` applies), hparams, score (mean validation Dice), per_fold, ...
    OUT/trials.csv          one row per trial: id, status, worker, seconds, mean and per-fold Dice,
                            hyperparameters, resident memory after the trial
    OUT/trials.png          score by trial with the best-so-far line
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

from islesbench.atomic import atomic_path, write_json_atomic, write_text_atomic
from islesbench.tuning.cv_tuner import OBJECTIVE, fold_score_name, read_assignments
from islesbench.tuning.search_space import SEARCH_SPACE, hparams_to_overrides, plain_value

# matplotlib imported inside functions only, so that `islesbench --help` and start-up stay fast.

BEST_HPARAMS = "best_hparams.json"
TRIALS_CSV = "trials.csv"
TRIALS_PNG = "trials.png"


def _metric(trial, name, digits=None):
    if trial.metrics.exists(name):
        value = trial.metrics.get_last_value(name)
        if value is None:
            return None
        return round(float(value), digits) if digits is not None else float(value)
    return None


def trial_rows(oracle, folds, project_dir) -> list:
    """One dict per trial, in the order the trials started."""
    assignments = read_assignments(project_dir)
    order = list(oracle.start_order) + [t for t in oracle.trials if t not in oracle.start_order]
    rows = []
    for trial_id in order:
        trial = oracle.trials[trial_id]
        status = trial.status
        if trial_id in getattr(oracle, "_retry_queue", []) or any(
                t.trial_id == trial_id for t in oracle.ongoing_trials.values()):
            status = "UNFINISHED"
        row = {"trial_id": trial_id, "status": status,
               "worker": ";".join(assignments.get(trial_id, [])),
               "seconds": _metric(trial, "seconds", 1),
               OBJECTIVE: _metric(trial, OBJECTIVE)}
        for k in folds:
            row[fold_score_name(k)] = _metric(trial, fold_score_name(k))
        values = trial.hyperparameters.values
        names = [n for n in SEARCH_SPACE if n in values] + sorted(n for n in values if n not in SEARCH_SPACE)
        row.update({name: plain_value(values[name]) for name in names})
        row["rss_mb"] = _metric(trial, "rss_mb", 1)
        row["message"] = (trial.message or "").strip().splitlines()[-1] if trial.message else ""
        rows.append(row)
    return rows


def write_trials_csv(rows: list, path) -> None:
    """trials.csv, atomically; columns in order of first appearance."""
    columns = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    columns = [c for c in columns if c != "message"] + (["message"] if columns else [])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    write_text_atomic(path, buf.getvalue())


def best_record(oracle, folds, settings: dict):
    """The best completed trial as best_hparams.json's content, or None when no trial completed."""
    completed = [t for t in oracle.trials.values()
                 if t.status == "COMPLETED" and _metric(t, OBJECTIVE) is not None]
    if not completed:
        return None
    # Ties go to the earliest trial: the trials' order in the oracle's state after a resume is not the
    # order they ran in, and the best must not depend on whether the search was interrupted.
    completed.sort(key=lambda t: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(t.trial_id))])
    best = max(completed, key=lambda t: _metric(t, OBJECTIVE))
    values = {k: plain_value(v) for k, v in best.hyperparameters.values.items()}
    return {
        "config_overrides": hparams_to_overrides(values, include_budget=False),
        "hparams": values,
        "score": _metric(best, OBJECTIVE),
        "objective": f"mean validation Dice over folds {list(folds)} (maximised)",
        "per_fold": [_metric(best, fold_score_name(k)) for k in folds],
        "folds": list(folds),
        "trial_id": best.trial_id,
        "trials_completed": len(completed),
        "trials_total": len(oracle.trials),
        **settings,
    }


def plot_trials(rows: list, path, title: str) -> None:
    """Mean validation Dice of each trial in start order, the best so far, failed trials marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    xs, ys, best_x, best_y, failed = [], [], [], [], []
    best = -math.inf
    for i, r in enumerate(rows, 1):
        score = r.get(OBJECTIVE)
        if r["status"] == "COMPLETED" and score is not None:
            xs.append(i), ys.append(score)
            best = max(best, score)
        elif r["status"] != "UNFINISHED":
            failed.append(i)
        if best > -math.inf:
            best_x.append(i), best_y.append(best)
    per_fold = [k for k in (rows[0] if rows else {}) if k.startswith("dice_fold_")]
    for k in per_fold:
        fx = [i for i, r in enumerate(rows, 1) if r["status"] == "COMPLETED" and r.get(k) is not None]
        ax.scatter(fx, [rows[i - 1][k] for i in fx], s=22, alpha=0.7, marker="_", color="dimgrey",
                   linewidths=1.5, label="single fold" if k == per_fold[0] else None)
    ax.scatter(xs, ys, color="tab:blue", zorder=3, label="trial (mean over folds)")
    if best_x:
        ax.step(best_x, best_y, where="post", color="tab:orange", label="best so far")
    if failed:
        ax.scatter(failed, [0.0] * len(failed), marker="x", color="tab:red", label="failed")
    ax.set_xlabel("trial id (in start order)")
    ax.set_ylabel("validation Dice")
    top = max(ys + [r.get(k) or 0 for r in rows for k in per_fold] + [0.05])
    ax.set_ylim(0, min(1.0, top * 1.15 + 0.02))
    if rows:
        ax.set_xlim(0.5, len(rows) + 0.5)
        step = max(1, len(rows) // 20)
        ax.set_xticks(range(1, len(rows) + 1, step), [rows[i - 1]["trial_id"] for i in range(1, len(rows) + 1, step)])
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def write_outputs(oracle, out_dir, folds, project_dir, settings: dict, title: str):
    """Write trials.csv, trials.png and (when a trial completed) best_hparams.json; return the best."""
    out_dir = Path(out_dir)
    rows = trial_rows(oracle, folds, project_dir)
    write_trials_csv(rows, out_dir / TRIALS_CSV)
    plot_trials(rows, out_dir / TRIALS_PNG, title)
    best = best_record(oracle, folds, settings)
    if best is not None:
        write_json_atomic(out_dir / BEST_HPARAMS, best)
    return best, rows
