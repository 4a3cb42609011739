"""Write the comparison report of a runs folder: report.md, report.html (self-contained) and results.csv
(`build_report`; the `islesbench report` command is islesbench.commands.report, and `benchmark` calls it too).

Reads only the results layout (reports/results_reader.py) and `benchmark.json`; it never trains or
predicts. The tables (reports/tables.py) put the patient first: per-configuration means over patients
with patient-level bootstrap intervals, the spread over patients and over training seeds, paired tests
on patients, and the paper's claims on matched pairs only. Figures are reports/figures.py's.
"""

from __future__ import annotations

import csv
import datetime as _dt
import math
import sys
from pathlib import Path

from islesbench import layouts
from islesbench.atomic import atomic_path, write_text_atomic
from islesbench.errors import IslesbenchError
from islesbench.imaging import nifti_io, preprocessing
from islesbench.reports import cells, curve, figures, tables
from islesbench.reports.document import heading, image, para, render_html, render_markdown
from islesbench.reports.results_reader import (METRIC_COLUMNS, PENALTY, RunResults, collect_runs, ensemble_members,
                                               group_runs, read_benchmark_record)
from islesbench.reports.stats import is_finite

FIGURE_DIR = "figures"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
RESULTS_CSV = "results.csv"


def _figure_blocks(runs: list[RunResults], fig_dir: Path) -> list:
    blocks = [heading(2, "Figures")]
    multi = len({r.cohort for r in runs}) > 1
    label = (lambda r: f"{r.name} [{r.cohort}]") if multi else (lambda r: r.name)
    ordered = sorted(runs, key=lambda r: -_nan_to(r.mean('dice'), -1.0))

    def attempt(make, caption):
        try:
            blocks.append(image(make(), caption))
        except figures.FigureSkipped as exc:
            blocks.append(para(f"*{caption}: not drawn — {exc}.*"))
            if "unreadable" in str(exc):  # a damaged file must not pass unseen on the console
                print(f"warning: {caption}: not drawn: {exc}", file=sys.stderr)

    attempt(lambda: figures.dice_box_strip([(label(r), list(r.values("dice").values())) for r in ordered],
                                           fig_dir / "dice_box.png"),
            "Dice per case, per configuration")
    attempt(lambda: figures.learning_curves([(label(r), r.histories) for r in ordered if r.histories],
                                            fig_dir / "learning_curves.png"),
            "Learning curves per fold (from each fold's history.csv)")
    attempt(lambda: figures.dice_vs_volume(
        [(label(r), [x["ref_volume_ml"] for x in r.rows], [x["dice"] for x in r.rows]) for r in ordered],
        fig_dir / "dice_vs_volume.png"),
            "Dice against reference lesion volume")
    for i, cohort in enumerate(sorted({r.cohort for r in runs})):
        best = max((r for r in runs if r.cohort == cohort), key=lambda r: _nan_to(r.mean("dice"), -1.0))
        name = "example_slices.png" if i == 0 else f"example_slices_{i}.png"
        attempt(lambda: figures.example_slices(example_cases(best, cohort_raw_data(best, runs)), fig_dir / name,
                                               title=f"{best.name} ({best.cohort})"),
                f"Best, median and worst case of {best.name} (CBF and Tmax; green: reference, red: prediction)")
    return blocks


def cohort_raw_data(run: RunResults, runs: list[RunResults]) -> str | None:
    """The raw cohort of `run`, else of another run of the same cohort (an ensemble may not record it)."""
    for candidate in [run] + [r for r in runs if r.cohort == run.cohort]:
        if candidate.raw_data():
            return candidate.raw_data()
    return None


def example_cases(run: RunResults, raw: str | None) -> list[dict]:
    """The best, median and worst case of `run` by Dice with their CBF, Tmax, reference and prediction."""
    if not raw:
        raise figures.FigureSkipped(f"no config.json of cohort {run.cohort!r} records the raw cohort ('raw_data')")
    if not Path(raw).exists():
        raise figures.FigureSkipped(f"the raw cohort {raw} is not available on this machine")
    ranked = sorted((r for r in run.rows if is_finite(r["dice"])), key=lambda r: (r["dice"], r["case"]))
    if not ranked:
        raise figures.FigureSkipped(f"{run.name} has no case with a finite Dice")
    picks = [("best", ranked[-1]), ("median", ranked[(len(ranked) - 1) // 2]), ("worst", ranked[0])]
    seen, chosen = set(), []
    for role, row in picks:
        if row["case"] not in seen:
            seen.add(row["case"])
            chosen.append((role, row))
    try:
        cases = {c.case_id: c for c in layouts.discover_cohort(raw)}
    except IslesbenchError as exc:
        raise figures.FigureSkipped(f"the raw cohort cannot be read ({exc})") from None
    examples = []

    for role, row in chosen:
        if row["case"] not in cases:
            raise figures.FigureSkipped(f"case {row['case']} is not in the raw cohort {raw}")
        pred_path = run.prediction_path(row["case"], row["fold"])
        if not pred_path.exists():
            raise figures.FigureSkipped(f"the predicted mask {pred_path} is missing")
        case = layouts.load_case(cases[row["case"]], modalities=("CT_CBF", "CT_Tmax"))
        try:
            pred = nifti_io.read_image(pred_path, ndim=3)[0] > 0.5
        except nifti_io.NiftiFileError as exc:
            raise figures.FigureSkipped(f"unreadable predicted mask {exc}") from None
        if pred.shape != case.mask.shape:
            raise figures.FigureSkipped(f"{pred_path} has shape {pred.shape}, the raw case {case.mask.shape}")
        # Axial slices of the canonical orientation, whatever order the volumes are stored in.
        ornt = preprocessing.canonical_ornt(case.affine)
        spacing = [0.0, 0.0, 0.0]
        for axis, (target, _) in enumerate(ornt):
            spacing[int(target)] = float(case.spacing[axis])
        examples.append(dict(role=role, case=row["case"], dice=row["dice"],
                             cbf=preprocessing.reorient(case.volumes["CT_CBF"], ornt),
                             tmax=preprocessing.reorient(case.volumes["CT_Tmax"], ornt),
                             reference=preprocessing.reorient(case.mask, ornt),
                             prediction=preprocessing.reorient(pred, ornt), spacing=tuple(spacing)))
    return examples


def write_results_csv(groups: list, path) -> Path:
    """One row per configuration × seed × fold × case with the patient and every per-case metric."""
    header = ["configuration", "run", "seed", "cohort", "fold", "case", "patient", *METRIC_COLUMNS]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for g in tables.order_groups(groups):
                for run, seed in zip(g.runs, g.seeds):
                    for r in sorted(run.rows, key=lambda r: (r["fold"], r["case"])):
                        writer.writerow([g.name, run.name, seed, g.cohort, r["fold"], r["case"], g.patient(r["case"]),
                                         *(_csv_value(r[c]) for c in METRIC_COLUMNS)])
    return Path(path)


def _csv_value(x) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if math.isnan(x):
        return "nan"
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def build_report(runs_dir, out_dir) -> dict:
    """Write report.md, report.html, results.csv and figures/ for `runs_dir`; return their paths."""
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    if not runs_dir.is_dir():
        raise IslesbenchError(f"runs folder {runs_dir} does not exist")
    runs, notes = collect_runs(runs_dir)
    record = read_benchmark_record(runs_dir)
    if not runs and not record:
        raise IslesbenchError(f"{runs_dir} holds no run with validation results (no */config.json with "
                              "fold_*/validation/metrics.csv) and no benchmark.json"
                              + "".join(f"; {n}" for n in notes))
    for note in notes:  # the report lists them too; a damaged run must not pass unseen
        if "unreadable" in note:
            print(f"warning: {note}", file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir = out_dir / FIGURE_DIR
    fig_dir.mkdir(exist_ok=True)
    groups = group_runs(runs)
    for message in sorted({g.mixed for g in groups if g.mixed}):  # never a silent change of what a row is
        print(f"warning: {message}", file=sys.stderr)

    title = "islesbench comparison report"
    cohorts = sorted({r.cohort for r in runs})
    blocks = [heading(1, title),
              para(f"Generated {_dt.datetime.now().isoformat(timespec='seconds')} from `{runs_dir}`. "
                   f"Cohort(s): {', '.join(cohorts) or 'none'}"
                   + (f"; profile `{record['profile']}`" if record and record.get("profile") else "") + "."),
              para("The paper's numbers (Abulnaga & Rubin 2018) come from 5-fold cross-validation on the real "
                   "ISLES 2018 training cases; rows from any other cohort (e.g. synthetic) are not comparable "
                   "with them, whatever their value."),
              para("Nothing in this report is chosen on the cases it is scored on: every fold's probability "
                   "threshold is chosen on that fold's training cases, validation uses the last checkpoint (not "
                   "the best on validation), ensemble members and tuned hyperparameters are chosen on other folds "
                   "(nested) and pretrained encoders never read the validation cases' images, unless the "
                   "Selection column says otherwise (it also says when what an encoder read is unknown).")]
    blocks[1:1] = cells.provenance_warnings(groups, record)
    if groups:
        blocks += [heading(2, "Comparison"), tables.comparison_table(groups, out_dir),
                   para("Means over patients (a patient's slabs averaged first; over seeds too), with 95 % intervals "
                        "from a seeded patient-level bootstrap; 'SD over patients' is the spread between patients "
                        "(ddof = 1), 'SD over seeds' the spread of the mean Dice between training seeds on "
                        "the same folds: a difference between rows smaller than it is seed noise. A mean over fewer "
                        "patients than the row has says so, `(n k/N)`: HD, HD95 and ASSD are infinite when exactly "
                        "one of prediction and reference is empty, and their plain means leave those patients out "
                        "(so a missed lesion makes a row's distances look better). '"
                        + tables.INFINITE_COLUMN + "' counts those results (case × seed) over every seed. In the "
                        "penalised HD and ASSD columns, " + PENALTY + ". "
                        + tables.convention_note(groups)
                        + " NSD is the normalised surface Dice at 2 mm; AVD the absolute volume difference in mL; "
                        "the lesion F1s and the absolute lesion-count difference use 26-connected components "
                        "(which F1 follows which rule: below). Each configuration links to the config.json that "
                        "produced it."), para(tables.lesion_f1_note())]
        blocks += tables.anchor_blocks(groups)
        for g in groups:
            members = ensemble_members(g.config)
            if g.is_ensemble and members:
                blocks.append(para(f"`{g.name}` averages validation probability maps of: "
                                   + ", ".join(f"`{m}`" for m in members) + " (per fold: see Statistics)."))
        per_fold = tables.per_fold_table(groups)
        if per_fold:
            blocks += [heading(3, "Mean Dice per fold (seed 0, over cases)"), per_fold]
        unfinished = [f"{r.name} fold {', '.join(map(str, r.unfinished_folds))}" for r in runs if r.unfinished_folds]
        if unfinished:
            blocks.append(para("Unfinished folds (metrics present, no DONE marker): " + "; ".join(unfinished) + "."))
        blocks += tables.stats_blocks(groups, record)
        blocks += curve.curve_blocks(groups, record, fig_dir, out_dir)
        blocks += _figure_blocks([g.runs[0] for g in groups], fig_dir)
    else:
        blocks.append(para("No configuration has validation results yet."))
    blocks += cells.benchmark_blocks(record)
    blocks += cells.provenance_blocks(groups)
    if notes:
        blocks += [heading(2, "Run folders without results")] + [para(n) for n in notes]
    blocks.append(para(f"Per-case numbers of every configuration, seed and fold: [{RESULTS_CSV}]({RESULTS_CSV})."))

    paths = {"results_csv": write_results_csv(groups, out_dir / RESULTS_CSV)}
    paths["report_md"] = out_dir / REPORT_MD
    write_text_atomic(paths["report_md"], render_markdown(blocks, out_dir))
    paths["report_html"] = out_dir / REPORT_HTML
    write_text_atomic(paths["report_html"], render_html(blocks, title))
    paths["figures"] = sorted(b[1] for b in blocks if b[0] == "img")
    return paths


def _nan_to(x: float, default: float) -> float:
    return x if is_finite(x) else default
