"""The report's data-efficiency section: Dice against the number of training patients, one line per
initialisation (scratch, self-supervised, ImageNet), pretrained vs scratch tested at each fraction, and what
every pretrained row was pretrained on.

Rows come from `benchmark --train-fraction` (or `run --train-fraction`): a configuration at fraction f is
named `<name>-frac<f>` and its config.json has `data.train_fraction` and the training patients per fold.
A pretrained-vs-scratch pair at one fraction is tested only when its config.json files differ in the
initialisation alone (reports/claims.py), on the patients both validated (reports/stats.py). The section says
whether the fractions trained for the same optimizer steps (`train.steps_per_epoch` set, or
`train.fraction_steps` matched) or fewer for less data (proportional), with each row's steps from training.json.
"""

from __future__ import annotations

import numpy as np

from islesbench.config import base_name, recorded_fraction, resnet50_weights
from islesbench.reports import figures, stats, tables
from islesbench.reports.cells import first_sentence, fmt_seconds
from islesbench.reports.document import code, heading, image, para, table
from islesbench.reports.stats import is_finite

SCRATCH, SELFSUP, IMAGENET, CHECKPOINT = "scratch", "self-supervised", "ImageNet", "checkpoint"


def family(name: str, config: dict) -> str:
    """The configuration without its training fraction: the line a row belongs to."""
    return base_name({**config, "name": name}, fraction=True)


def initialisation(config: dict) -> str:
    """scratch, self-supervised, ImageNet (ImageNet or a ResNet-50 .h5 file) or checkpoint."""
    pretrained = (config.get("model") or {}).get("pretrained")
    if not pretrained:
        return SCRATCH
    if resnet50_weights(pretrained):
        return IMAGENET
    return SELFSUP if (config.get("pretraining") or {}).get("method") else CHECKPOINT


def training_patients(group) -> float:
    """Mean over the folds that ran of the training patients a row used, as `islesbench run` records them."""
    recorded = group.config.get("train_patients")
    run = group.runs[0]
    if recorded:
        values = [recorded[str(k)] for k in run.folds if str(k) in recorded] or list(recorded.values())
        return float(np.mean([float(v) for v in values]))
    # Runs made before it was recorded: every patient not validated in the fold, which counts only the
    # patients of the folds that ran (too few unless all did).
    everyone = {group.patient(r["case"]) for r in run.rows}
    per_fold = [len(everyone - {group.patient(r["case"]) for r in run.rows if r["fold"] == k}) for k in run.folds]
    return float(np.mean(per_fold)) if per_fold else float("nan")


def optimizer_steps(group) -> float | None:
    """Mean over the folds (and seeds) that recorded it of the optimizer steps a fold trained for (training.json)."""
    values = [(f or {}).get("optimizer_steps") for f in group.training_facts.values()]
    values = [float(v) for v in values if isinstance(v, (int, float))]
    return float(np.mean(values)) if values else None


def steps_choice(config: dict) -> str:
    """How a fraction row's optimizer steps were set: `configured` (train.steps_per_epoch), `matched` (one pass
    over the whole fold's training set) or `proportional` (one pass over the share; also every run made before
    train.fraction_steps was recorded)."""
    train = config.get("train") or {}
    if train.get("steps_per_epoch"):
        return "configured"
    return str(train.get("fraction_steps") or "proportional")


def compute_sentence(groups: list) -> str:
    """Whether the curve's fractions trained for the same optimizer steps, and which rows did not."""
    shares = [g for g in groups if recorded_fraction(g.config) < 1 and not g.is_ensemble]
    fewer = sorted(g.name for g in shares if steps_choice(g.config) == "proportional")
    if fewer:
        return ("Optimizer steps NOT held fixed across fractions for " + ", ".join(fewer) + ": with "
                "`train.fraction_steps` proportional (or a run made before the choice was recorded) an epoch is one "
                "pass over the share trained on, so a smaller fraction also trains for fewer steps, and those points "
                "mix less data with less compute (see the optimizer steps column).")
    if all(steps_choice(g.config) == "configured" for g in shares):
        return ("Optimizer steps held fixed across fractions: every row trains for its configured "
                "`train.steps_per_epoch` × epochs, so the curve varies labelled data, not compute.")
    return ("Optimizer steps held fixed across fractions: with `train.fraction_steps` matched an epoch is one pass "
            "over the fold's whole training set at every fraction, so the curve varies labelled data, not compute.")


def curve_lines(groups: list) -> dict:
    """{(arch, loss, initialisation, family): {fraction: group}} of the learned rows of the curve."""
    lines = {}
    for g in groups:
        model = g.config.get("model") or {}
        if g.is_ensemble or model.get("arch") in (None, "threshold"):
            continue
        key = (model.get("arch"), (g.config.get("loss") or {}).get("name"), initialisation(g.config),
               family(g.name, g.config))
        lines.setdefault(key, {})[recorded_fraction(g.config)] = g
    return lines


def curve_blocks(groups: list, record: dict | None, fig_dir, out_dir) -> list:
    """The data-efficiency section, or nothing when no row trained on a fraction of its patients."""
    if not any(recorded_fraction(g.config) < 1 for g in groups):
        return []
    lines = curve_lines(groups)
    fractions = sorted({f for points in lines.values() for f in points})
    blocks = [heading(2, "Data efficiency: Dice against the number of training patients"),
              para("Each learned configuration trained on a seeded share of every fold's training patients (nested: "
                   "the smaller sets are subsets of the larger), validated on the whole fold. Dice is the mean over "
                   "patients with its 95 % patient-level bootstrap interval; the x position is the mean number of "
                   "training patients per fold (labelled patients). " + compute_sentence(groups))]
    if any(init == SELFSUP for (_, _, init, _) in lines):
        blocks.append(para("Semi-supervised, not a matched data budget: fold k's self-supervised encoder is "
                           "pretrained once, on the images (no masks) of all of fold k's training patients (and the "
                           "pretraining cohorts), and every fraction fine-tunes from it. So below full data the "
                           "self-supervised row has seen unlabelled images of more patients than scratch has "
                           "labelled ones (at 0.25, about four times as many); its gain measures what those unlabelled "
                           "images add."))
    series, rows = [], []
    for (arch, loss, init, name), points in sorted(lines.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        line = []
        for f in sorted(points):
            g = points[f]
            values = list(g.patient_values("dice").values())
            mean = float(np.mean(values)) if values else float("nan")
            ci = stats.bootstrap_ci(values) or (mean, mean)
            n = training_patients(g)
            line.append((n, mean, ci[0], ci[1], f))
            steps = optimizer_steps(g)
            rows.append([name, init, f"{f:g}", f"{n:.1f}", "not recorded" if steps is None else f"{steps:.0f}",
                         len(values),
                         f"{mean:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if is_finite(mean) else "n/a", g.name])
        series.append((f"{name} ({init})", line))
    try:
        blocks.append(image(figures.data_efficiency(series, fig_dir / "data_efficiency.png"),
                            "Dice against training patients, one line per initialisation (bars: 95 % CI); optimizer "
                            "steps " + ("NOT held fixed" if "NOT" in compute_sentence(groups) else "held fixed")
                            + " across fractions"))
    except figures.FigureSkipped as exc:
        blocks.append(para(f"*Data-efficiency figure not drawn — {exc}.*"))
    blocks.append(table(["Configuration", "Initialisation", "Fraction", "Training patients per fold",
                         "Optimizer steps per fold", "Validated patients", "Dice [95% CI]", "Row"], rows))
    blocks += _not_run_blocks(record, {init for (_, _, init, _) in lines})
    blocks += pair_blocks(lines, fractions)
    blocks += pretraining_blocks(groups, record)
    return blocks


def pair_blocks(lines: dict, fractions: list) -> list:
    """Pretrained vs scratch at each fraction below 1, as matched pairs of patients; Holm over the controlled
    pairs. The full-data pair is shown, not tested: the paper's claims table tests it, in its own Holm family."""
    rows = []
    for (arch, loss, init, name), points in sorted(lines.items()):
        if init == SCRATCH:
            continue
        scratch = next((p for (a, lo, i, _), p in lines.items() if (a, lo, i) == (arch, loss, SCRATCH)), None)
        for f in fractions:
            first, second = points.get(f), (scratch or {}).get(f)
            label = f"{init} > scratch, {arch} {loss}, fraction {f:g}"
            if first is None or second is None:
                rows.append(tables.PairRow(label, getattr(first, "name", "—"), getattr(second, "name", "—"), None,
                                           False, "not testable: one side has no results at this fraction", ""))
                continue
            check = tables.check_groups("pretraining", first, second)
            c = stats.paired_wilcoxon(first.patient_values("dice"), second.patient_values("dice"), first.name,
                                      second.name, "dice", label=label)
            verdict = "controlled" if check.controlled else (
                "NOT a test: also differs in " + ", ".join(check.confounders) if check.confounders
                else "NOT a clean test: " + "; ".join(check.leaks))
            rows.append(tables.PairRow(label, first.name, second.name, c, check.controlled and f < 1, verdict,
                                       "; ".join(check.differences), untested="not a test" if f < 1 else
                                       "see the claims table", seed_sds=tables.seed_sds(first, second),
                                       n_seeds=len(first.runs)))
    if not rows:
        return []
    return [heading(3, "Pretrained vs scratch at each fraction"),
            para("Paired two-sided Wilcoxon signed-rank tests on per-patient Dice (first − second), Holm-adjusted over "
                 "the controlled pairs below full data; a pair whose config.json files differ in more than the "
                 "initialisation is shown but not tested, and so is the full-data pair, which the paper's claims "
                 "table tests. Outcome and power columns as in the claims table (Statistics)."),
            table(tables.PAIR_HEADERS, tables.pair_table(rows))]


def _not_run_blocks(record: dict | None, present: set) -> list:
    """The ImageNet line when the benchmark could not run it (weights not cached): the reason and the command."""
    if IMAGENET in present:
        return []
    for cell in (record or {}).get("cells", []):
        if cell.get("pretrained") == "imagenet" and cell.get("status") != "done":
            reason = first_sentence(cell.get("reason")) or "no reason recorded"
            return [para(f"**{IMAGENET}** line not run: {reason}. Its full-data cell would run with:"),
                    code(cell.get("command", ""))]
    return []


def pretraining_blocks(groups: list, record: dict | None) -> list:
    """What each pretrained row was pretrained on: method, schedule, cohorts, what was left out, time."""
    used = {}  # (source, fold) -> (entry, the rows fine-tuned from it): every fraction shares fold k's encoder
    for g in groups:
        info = g.config.get("pretraining")
        for fold, entry in ((info or {}).get("folds") or {}).items():
            key = (info.get("source"), int(fold), entry.get("file"))
            used.setdefault(key, (entry, []))[1].append(g.name)
    rows = []
    for (_, fold, _), (entry, names) in sorted(used.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        cohorts = "; ".join(f"{c.get('cohort')} ({c.get('n_cases')} cases, {c.get('n_slices')} slices, cases "
                            f"{c.get('cases_fingerprint')})" for c in entry.get("cohorts") or [])
        excluded = entry.get("excluded") or {}
        left_out = (f"{len(excluded.get('patients', []))} patients ({len(excluded.get('cases', []))} cases) of fold "
                    f"{excluded.get('fold')}" if excluded else "nothing")
        rows.append([", ".join(sorted(names)), fold, entry.get("method") or entry.get("record", "?"),
                     f"{entry.get('epochs')} × {entry.get('steps_per_epoch')}" if entry.get("epochs") else "—",
                     cohorts or "unknown", left_out, entry.get("saw_validation_cases", "unknown"),
                     fmt_seconds(entry.get("seconds"))])
    if not rows:
        return []
    blocks = [heading(3, "What each pretrained row was pretrained on"),
              table(["Rows", "Fold", "Method", "Epochs × steps", "Cohorts read (images only)", "Left out",
                     "Validation cases seen", "Pretraining time"], rows)]
    pre = (record or {}).get("pretraining")
    if pre:
        blocks.append(para(f"The benchmark's self-supervised pretraining: {pre.get('status')}, "
                           f"{fmt_seconds(pre.get('seconds'))} of wall time for {len(pre.get('folds') or {})} "
                           "fold(s)" + (f" ({pre['reason']})" if pre.get("reason") else "") + "."))
        if pre.get("command"):
            blocks.append(code(pre["command"]))
    return blocks
