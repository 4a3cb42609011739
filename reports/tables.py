"""The report's tables: comparison (patient-level means with bootstrap intervals and seed spread), per
fold, statistics against the best, the paper's claims with their config differences, and the ensemble's
nested selection (the benchmark's cells and what produced the runs: reports/cells.py).

Every block is built from ConfigGroups (reports/results_reader.py); rendering is reports/document.py's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from islesbench.config import recorded_fraction
from islesbench.errors import IslesbenchError
from islesbench.evaluation.names import CONVENTION_LABELS, LESION_F1_LABELS
from islesbench.grid.grid_file import GridCell
from islesbench.reports import anchors, claims, stats
from islesbench.reports.cells import first_sentence
from islesbench.reports.document import Link, heading, para, table
from islesbench.reports.stats import is_finite
from islesbench.storage import selection
from islesbench.storage.run_layout import is_external

# (column, heading, decimals) of the comparison table; Dice gets its own columns.
OTHER_METRICS = (("precision", "Precision", 3), ("recall", "Recall", 3), ("hd", "HD (mm)", 1),
                 ("hd95", "HD95 (mm)", 1), ("assd", "ASSD (mm)", 1), ("nsd_2mm", "NSD 2 mm", 3),
                 ("avd_ml", "AVD (mL)", 2), ("lesion_f1", "Lesion F1 (ISLES'22)", 3),
                 ("lesion_f1_iou50", "Lesion F1 IoU≥0.5 (ISLES'24, 2024)", 3),
                 ("lesion_f1_iou20", "Lesion F1 IoU≥0.2 (ISLES'24 since 2025-12)", 3),
                 ("lesion_count_diff", "Lesion count diff", 2))
# (column, heading) of the distances shown again with an empty prediction penalised (results_reader.PENALTY): the
# two ISLES 2018 ranked teams on, beside Dice and AVD.
PENALISED_METRICS = (("hd", "HD, empty penalised (mm)"), ("assd", "ASSD, empty penalised (mm)"))
INFINITE_COLUMN = "Infinite distances (results)"

# The paper's column: its 5-fold CV numbers (reports/anchors.py), labelled by data and split.
PAPER_COLUMN = "Paper Dice (" + anchors.ISLES2018_TRAINING_CV + ")"


def selection_flag(group) -> str:
    """What the row's label must warn about: imported predictions, seed runs of other configurations under its
    name, hyperparameters, members or a pretraining that used its scored cases, a pretraining on unknown data,
    and for an ensemble how its members were chosen and its members' own flags (islesbench.storage.selection)."""
    if is_external(group.config):
        return "external predictions (imported): what they chose, and on which cases, is not recorded here"
    flags = selection.selection_flags(group.config)
    if group.mixed:
        flags = ["MIXED SEEDS: " + group.mixed] + flags
    if group.is_ensemble:
        method = (group.config.get("selection") or {}).get("method")
        chosen = {"nested": "members chosen per fold on the other folds (nested)",
                  "fixed": "members fixed before running"}.get(method, "members chosen on the scored cases: optimistic")
        return "; ".join([chosen] + flags)
    tuning = group.tuning
    if not flags and tuning and tuning.get("nested"):
        return "tuned per outer fold (nested)"
    return "; ".join(flags)


def paper_number(group) -> str:
    """The paper's published Dice for this configuration, or an empty string (none for ISLES'24 rows:
    another task, other data)."""
    if group.is_isles24:
        return ""
    found = anchors.paper_cv_anchor(group.name, group.is_ensemble)
    if found is None:
        return ""
    return f"{found.text} ({found.data})" if group.is_ensemble else found.text


def anchor_blocks(groups: list) -> list:
    """The published numbers a reader compares with, each labelled by its data, split and source."""
    datasets = sorted({"isles24" if g.is_isles24 else "isles2018" for g in groups})
    rows = []
    for dataset in datasets:
        for a in anchors.challenge_anchors(dataset):
            rows.append([a.text, a.metric, a.what, a.data, a.source])
    if not rows:
        return []
    return [heading(3, "Published numbers to compare with"),
            para("Challenge test-set results are on other cases than any cross-validation row, and on real data; "
                 "a synthetic row is comparable with none of them."),
            table(["Number", "Metric", "Whose", "Data and split", "Source"], rows)]


def convention_note(groups: list) -> str:
    """Which HD/ASSD definition the table's distances follow (islesbench.evaluation.names.CONVENTION_LABELS)."""
    used = sorted({g.convention for g in groups})
    named = "; ".join(f"`{c}`: {CONVENTION_LABELS.get(c, 'rows of more than one convention')}" for c in used)
    return f"HD and ASSD follow the convention in each row's Convention column ({named})."


def lesion_f1_note() -> str:
    """Which rule each lesion F1 column follows (islesbench.evaluation.lesions), and the Dice caveat of the
    ISLES'24 script's panoptica."""
    cols = {col: head for col, head, _ in OTHER_METRICS}
    return ("Lesion F1 columns: " + "; ".join(f"'{cols[k]}' is `{k}`, the {label}" for k, label in
                                              LESION_F1_LABELS.items()) +
            ". A row made before `lesion_f1_iou20` existed shows n/a there. The ISLES'24 script's Dice came from "
            "panoptica, whose versions up to 1.0.1 (the one current during the 2024 challenge) report Dice 0 when "
            "no lesion pair matches; the Dice here is the plain global Dice.")


def mean_with_ci(values: list, decimals: int) -> str:
    """`mean [lo, hi]` over patients, the interval a seeded patient-level bootstrap."""
    vals = [v for v in values if is_finite(v)]
    if not vals:
        return "n/a"
    mean = sum(vals) / len(vals)
    ci = stats.bootstrap_ci(vals)
    if ci is None:
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} [{ci[0]:.{decimals}f}, {ci[1]:.{decimals}f}]"


def seed_spread(group) -> str:
    """SD of the per-seed mean Dice, with the range, or why there is none."""
    means = [m for m in group.seed_means("dice") if is_finite(m)]
    if len(means) < 2:
        return "1 seed"
    return f"{np.std(means, ddof=1):.3f} (range {max(means) - min(means):.3f}, {len(means)} seeds)"


def order_groups(groups: list) -> list:
    """Grouped by cohort, best mean patient Dice first within each."""
    def key(g):
        vals = list(g.patient_values("dice").values())
        return (g.cohort, -(sum(vals) / len(vals)) if vals else 1.0, g.name)

    return sorted(groups, key=key)


def comparison_table(groups: list, out_dir: Path):
    """One row per configuration: patient-level means with 95 % intervals, the spreads, the flags.

    A metric's cell names its n, the patients with a value, when that is fewer than the row's patients (an
    infinite distance leaves its patient out of the plain mean); the infinite results are counted over every
    seed and case, and HD and ASSD are shown again with an empty prediction penalised (results_reader.PENALTY).
    """
    headers = (["Configuration", "Cohort", "Seeds", "Folds", "Patients (cases)", "Dice [95% CI]",
                "SD over patients", "SD over seeds"] + [h for _, h, _ in OTHER_METRICS]
               + [INFINITE_COLUMN] + [h for _, h in PENALISED_METRICS]
               + ["Convention", "Selection", PAPER_COLUMN])
    body = []
    for g in order_groups(groups):
        patients = len({g.patient(c) for c in g.cases})
        dice = list(g.patient_values("dice").values())
        cells = [Link(g.name, _rel(g.runs[0].run_dir / "config.json", out_dir)), g.cohort, len(g.runs),
                 len(g.folds), f"{patients} ({len(g.cases)})",
                 mean_with_n(dice, 3, patients), f"{np.std(dice, ddof=1):.3f}" if len(dice) > 1 else "n/a",
                 seed_spread(g)]
        cells += [mean_with_n(list(g.patient_values(col).values()), dec, patients) for col, _, dec in OTHER_METRICS]
        infinite, results = g.infinite_results()
        cells.append(f"{infinite} of {results}")
        cells += [mean_with_n(list(g.patient_values(col, penalised=True).values()), 1, patients)
                  for col, _ in PENALISED_METRICS]
        cells += [g.convention, selection_flag(g) or "—", paper_number(g) or "—"]
        body.append(cells)
    return table(headers, body)


def mean_with_n(values: list, decimals: int, patients: int) -> str:
    """mean_with_ci of the finite values, with `(n k/N)` when only k of the N patients have one (`n/a`: none has)."""
    n = sum(1 for v in values if is_finite(v))
    text = mean_with_ci(values, decimals)
    return text if n in (0, patients) else f"{text} (n {n}/{patients})"


def per_fold_table(groups: list):
    """Mean Dice per fold of each configuration's seed-0 run (cases, not patients)."""
    folds = sorted({f for g in groups for f in g.folds})
    body = []
    for g in order_groups(groups):
        run = g.runs[0]
        cells = [g.name]
        for f in folds:
            vals = [r["dice"] for r in run.rows if r["fold"] == f and is_finite(r["dice"])]
            text = f"{np.mean(vals):.3f}" if vals else "—"
            cells.append(text + (" (unfinished)" if f in run.unfinished_folds else ""))
        body.append(cells)
    return table(["Configuration"] + [f"fold {f}" for f in folds], body) if folds and body else None


_STATS_HEADERS = ["Comparison", "First", "Second", "n patients", "Mean Dice diff [95% CI]", "W", "p", "p (Holm)",
                  "r", "Note"]
PAIR_HEADERS = _STATS_HEADERS[:9] + ["Verdict", "Config differences (first → second)", "Outcome",
                                     f"Detectable at {stats.POWER:.0%} power",
                                     f"Needed for {stats.TARGET_DIFFERENCE:g} Dice"]


def stats_blocks(groups: list, record: dict | None) -> list:
    """Against the best configuration, and the paper's claims with their config differences."""
    blocks = [heading(2, "Statistics"),
              para("The unit is the patient: a patient's slabs are averaged first (mean of per-slab Dice), and over "
                   "seeds when a configuration ran with several. Paired two-sided Wilcoxon signed-rank tests on "
                   "per-patient Dice (`scipy.stats.wilcoxon`, zero differences dropped), Holm-adjusted within each "
                   "table; effect size r = (R+ − R−)/(R+ + R−), positive when the first is better; 95 % intervals "
                   f"from a seeded patient-level percentile bootstrap ({stats.BOOTSTRAP_RESAMPLES} resamples). No "
                   f"p-value with fewer than {stats.MIN_NONZERO_PAIRS} non-zero differences.")]
    for cohort in sorted({g.cohort for g in groups}):
        group = [g for g in groups if g.cohort == cohort]
        blocks.append(heading(3, f"Cohort: {cohort}"))
        patients = {g.patient(c) for g in group for c in g.cases}
        cases = {c for g in group for c in g.cases}
        blocks.append(para(f"{len(patients)} patients, {len(cases)} cases; patients from "
                           f"{group[0].patient_source}."))
        # Rows on a share of the patients are the curve's (reports/curve.py), tested there at their own fraction.
        summaries = [stats.ConfigSummary(g.name, g.patient_values("dice")) for g in group
                     if recorded_fraction(g.config) >= 1]
        best, vs_best = stats.versus_best(summaries)
        if best is not None and vs_best:
            holm = stats.holm_adjust([c.p_value for c in vs_best])
            blocks += [para(f"Each configuration against the best by mean patient Dice, **{best}**. The best is picked "
                            "on these same patients, so these p-values describe the ranking; they do not confirm "
                            "it (the paper's claims below are the tests)"
                            + ("; rows trained on a share of the patients are the data-efficiency section's"
                               if len(summaries) < len(group) else "") + ":"),
                       table(_STATS_HEADERS, [_stats_row(c, h) for c, h in zip(vs_best, holm)])]
        blocks += claim_blocks(group, record)
        blocks += cross_framework_blocks(group)
        blocks += ensemble_blocks(group)
    return blocks


def claim_blocks(groups: list, record: dict | None) -> list:
    """The paper's claims: each on a pair that differs only in the factor, else said not to test it."""
    by_name = {g.name: g for g in groups}
    configs = {g.name: g.config for g in groups}
    pairs = claims.claim_pairs(configs)
    if not pairs:
        return [para("No pair of configurations here tests one of the paper's claims.")]
    rows = []
    for pair in pairs:
        a, b = by_name.get(pair.first), by_name.get(pair.second)
        if a is None or b is None:
            missing = pair.first if a is None else pair.second
            rows.append(PairRow(pair.label, pair.first, pair.second, None, False,
                                "not testable here: " + _missing_reason(missing, a or b, pair, record), "—"))
            continue
        check = check_groups(pair.factor, a, b)
        comparison = stats.paired_wilcoxon(a.patient_values("dice"), b.patient_values("dice"), a.name, b.name,
                                           "dice", label=pair.label)
        verdict = ("controlled: differs only in " + pair.factor) if check.controlled else (
            ("NOT a test of the claim: also differs in " + ", ".join(check.confounders)
             + (f" ({check.note})" if check.note else "")) if check.confounders else
            "NOT a clean test of the claim: " + "; ".join(check.leaks))
        rows.append(PairRow(pair.label, a.name, b.name, comparison, check.controlled, verdict,
                            "; ".join(check.differences) or "none", seed_sds=seed_sds(a, b), n_seeds=len(a.runs),
                            paper_effect=None if a.is_isles24 else anchors.paper_effect(a.name, b.name)))
    return [para("The paper's claims (the paper reports first > second). A claim is tested only on a pair whose "
                 "config.json files differ in the factor alone (same width, input size, schedule, optimiser, "
                 "augmentation, seeds, data and folds) and whose folds' training.json agree on what the training "
                 "resolved to (optimizer steps per fold, replicas, and within "
                 f"{claims.SLICE_SHARE_TOLERANCE:g} the share of drawn training slices with lesion, within a factor "
                 f"{claims.VOXEL_SHARE_RATIO:g} the share of lesion voxels); Holm adjustment runs over the controlled "
                 "pairs."),
            table(PAIR_HEADERS, pair_table(rows)),
            para(POWER_NOTE)]


POWER_NOTE = (
    "Outcome: **shown** when p (Holm) < 0.05 and the 95 % interval excludes zero on the paper's side; an interval "
    "that spans zero is **not shown**, which is not \"does not hold\": that is said only when the interval also "
    "excludes the difference the paper reports (+0.07 for pre-training, +0.05 for focal over CE on the pretrained "
    f"PSPNet). Power: the smallest mean difference the pair detects with {stats.POWER:.0%} power at Holm's "
    "strictest level (0.05 / m over the table's m tested pairs), from the SD of the per-patient differences and "
    "each arm's SD over seeds: Var = σ_d² / (ARE·n) + (σ_A² + σ_B²) / s with ARE = 3/π, the Wilcoxon test's "
    f"efficiency relative to the t-test; and the patients (at these seeds) or seeds (at these patients) that "
    f"would detect {stats.TARGET_DIFFERENCE:g} Dice. With one seed the seed term is unmeasured and left out, so "
    "the detectable difference is a lower bound.")


def seed_sds(*groups) -> tuple:
    """Each group's SD (ddof = 1) of its per-seed mean Dice, or () when any group ran fewer than two seeds."""
    out = []
    for g in groups:
        means = [m for m in g.seed_means("dice") if is_finite(m)]
        if len(means) < 2:
            return ()
        out.append(float(np.std(means, ddof=1)))
    return tuple(out)


def check_groups(factor: str, a, b) -> claims.PairCheck:
    """claims.check_pair on two ConfigGroups (their configs, seeds, folds' provenance and training facts), and
    never controlled when a side's name also holds seed runs of other configurations (results_reader.group_runs
    split them off: not the experiment the name says)."""
    check = claims.check_pair(factor, a.config, b.config, a.seeds, b.seeds, a.provenance_records,
                              b.provenance_records, facts=(claims.training_summary(a.training_facts),
                                                           claims.training_summary(b.training_facts)))
    mixed = [g.mixed for g in (a, b) if g.mixed]
    if not mixed:
        return check
    return claims.PairCheck(False, check.differences, check.confounders + ["seed runs of other configurations"],
                            "; ".join(mixed), check.leaks)


def cross_framework_blocks(groups: list) -> list:
    """Each imported (external) row against every other row: paired like the claims, but labelled a
    cross-framework comparison, since an external row has no config.json of islesbench's to diff."""
    externals = [g for g in groups if is_external(g.config)]
    if not externals:
        return []
    others = [g for g in groups if recorded_fraction(g.config) >= 1]
    rows = []
    for ext in externals:
        source = (ext.config.get("external") or {}).get("description") or (ext.config.get("external") or {}).get("source")
        for other in others:
            if other is ext:
                continue
            mine, theirs = ext.config.get("splits_fingerprint"), other.config.get("splits_fingerprint")
            same_folds = mine is not None and mine == theirs
            comparison = stats.paired_wilcoxon(ext.patient_values("dice"), other.patient_values("dice"), ext.name,
                                               other.name, "dice", label=f"{ext.name} vs {other.name}")
            if same_folds:
                verdict = "cross-framework comparison on the same folds; configs cannot be diffed"
            elif mine is None or theirs is None:  # e.g. an ensemble made before ensembles recorded their folds
                unknown = ext.name if mine is None else other.name
                verdict = (f"NOT comparable: {unknown}'s folds are unknown (its config.json records no splits "
                           "fingerprint)")
            else:
                verdict = f"NOT comparable: predicted on other folds (splits fingerprint {mine} vs {theirs})"
            rows.append(PairRow(f"{ext.name} vs {other.name}", ext.name, other.name, comparison, same_folds, verdict,
                                f"cannot be diffed: external predictions ({source}) vs "
                                + ("external predictions" if is_external(other.config) else "islesbench configuration"),
                                untested="other folds" if mine and theirs else "folds unknown"))
    return [heading(4, "Cross-framework comparisons"),
            para("Rows imported with `islesbench import` (predictions made by another framework on these folds, "
                 "scored by islesbench's evaluator) against every other row, paired by patient. Their training "
                 "configuration is not islesbench's, so no field-by-field control is possible: a difference here "
                 "compares whole methods (architecture, preprocessing, schedule, budget and post-processing "
                 "together), not one factor. Holm adjustment runs over the rows on the same folds."),
            table(PAIR_HEADERS, pair_table(rows))]


@dataclass(frozen=True)
class PairRow:
    """One row of a table of paired tests; `comparison` None when a side has no results."""

    label: str
    first: str
    second: str
    comparison: stats.PairedComparison | None
    tested: bool  # enters the table's Holm family
    verdict: str
    differences: str
    untested: str = "not a test"  # the p cell of a row that is shown but not tested
    seed_sds: tuple = ()  # each side's SD over seeds of the mean Dice; () when unmeasured (one seed)
    n_seeds: int = 1  # seeds per side
    paper_effect: anchors.Effect | None = None  # the difference the paper reports for this pair, if any


def pair_table(rows: list) -> list:
    """The body of a table under PAIR_HEADERS: Holm runs over the tested rows of this table only."""
    tested = [r.comparison for r in rows if r.tested and r.comparison is not None]
    holm = dict(zip(map(id, tested), stats.holm_adjust([c.p_value for c in tested])))
    alpha = stats.ALPHA / max(len(tested), 1)  # Holm's strictest step
    body = []
    for r in rows:
        c = r.comparison
        if c is None:
            body.append([r.label, r.first, r.second] + ["—"] * 6 + [r.verdict, r.differences] + ["—"] * 3)
            continue
        cells = _stats_row(c, holm.get(id(c)))
        if not r.tested:
            cells[5:8] = ["—", r.untested, "—"]
        body.append(cells[:9] + [r.verdict + (f"; {c.reason}" if c.reason else ""), r.differences]
                    + (_outcome_cells(r, holm.get(id(c)), alpha) if r.tested else ["—"] * 3))
    return body


def _outcome_cells(r: PairRow, holm_p, alpha: float) -> list:
    """Outcome, detectable difference and what a target difference needs, for a tested row."""
    c = r.comparison
    outcome = claims.claim_outcome(c.ci, holm_p, stats.ALPHA, r.paper_effect)
    if c.sd_diff is None:
        return [outcome, "n/a: fewer than two patients", "n/a"]
    power = stats.power_estimate(c.sd_diff, c.n_pairs, r.seed_sds, r.n_seeds, alpha=alpha)
    detectable = "n/a" if power.detectable is None else f"{power.detectable:.3f} (α = {power.alpha:.3g})"
    if power.note:
        detectable += f"; {power.note}"
    patients = (f"{power.patients_needed} patients at {r.n_seeds} seed(s)" if power.patients_needed else
                f"no number of patients at {r.n_seeds} seed(s) (the seed spread alone is larger)")
    if power.seeds_needed:
        seeds = f"{power.seeds_needed} seeds at {c.n_pairs} patients"
    elif r.seed_sds:
        seeds = f"no number of seeds at {c.n_pairs} patients"
    else:
        seeds = "seeds: unknown (one seed)"
    needed = f"{patients}; or {seeds}"
    if power.together:
        needed += f"; together: {power.together[0]} patients and {power.together[1]} seeds"
    return [outcome, detectable, needed]


def _missing_reason(missing: str, present, pair, record) -> str:
    cell = next((c for c in (record or {}).get("cells", []) if c.get("name") == missing), None)
    reason = f"{missing} has no results"
    if cell and cell.get("reason"):
        reason = f"{missing} {cell.get('status', 'not run')}: {first_sentence(cell['reason'])}"
    if cell and present is not None and record.get("profile"):

        try:
            would = GridCell(cell["arch"], cell.get("loss") or "focal", cell.get("pretrained")).config(
                record["profile"]).to_dict()
        except (IslesbenchError, KeyError):
            return reason
        would = json.loads(json.dumps(would))  # as config.json stores it (tuples become lists)
        would["data"]["modalities"] = (present.config.get("data") or {}).get("modalities")  # run sets the prepared ones
        shared = {k: present.config.get(k) for k in ("cohort", "grid", "splits_fingerprint", "tuning", "slice_mm")}
        check = claims.check_pair(pair.factor, {**would, **shared}, present.config)
        if not check.controlled:
            reason += (f". Not testable in the {record['profile']} profile even with it: the pair would also differ "
                       f"in {', '.join(check.confounders)}")
    return reason


def ensemble_blocks(groups: list) -> list:
    """Each ensemble's members per fold and how they were chosen, and the ensemble against the best
    single configuration chosen the same way (on the other folds)."""
    blocks = []
    singles = [g for g in groups if not g.is_ensemble and (g.config.get("model") or {}).get("arch") != "threshold"]
    for ens in (g for g in groups if g.is_ensemble):
        selection = ens.config.get("selection") or {}
        per_fold = selection.get("per_fold") or {}
        blocks.append(heading(4, f"Ensemble {ens.name}"))
        if not per_fold:
            blocks.append(para(f"`{ens.name}` records no per-fold selection: its members were chosen on the cases "
                               "it is scored on, so its row is optimistic."))
            continue
        blocks.append(para(f"Selection: {selection.get('description', selection.get('method', '?'))}."))
        blocks.append(table(["Fold", "Members", "Ranking on the other folds (mean Dice)"],
                            [[k, ", ".join(v["members"]),
                              "; ".join(f"{n} {d:.3f}" for n, d in v["ranking"]) if v.get("ranking") else "fixed"]
                             for k, v in sorted(per_fold.items(), key=lambda kv: int(kv[0]))]))
        single = nested_best_single(ens, singles)
        if single:
            c = stats.paired_wilcoxon(ens.patient_values("dice"), single, ens.name, "best single (nested)", "dice",
                                      label="ensemble > best single model, both chosen on the other folds")
            blocks.append(table(_STATS_HEADERS, [_stats_row(c, None)]))
    return blocks


def nested_best_single(ensemble, singles: list) -> dict:
    """patient -> Dice of the single configuration ranked first on the other folds, fold by fold."""
    per_fold = (ensemble.config.get("selection") or {}).get("per_fold") or {}
    by_name = {g.name: g for g in singles}
    case_values = {}
    for k, choice in per_fold.items():
        ranking = choice.get("ranking") or []
        if not ranking or ranking[0][0] not in by_name:
            return {}
        g = by_name[ranking[0][0]]
        for row in g.runs[0].rows:
            if str(row["fold"]) == str(k) and is_finite(row["dice"]):
                case_values.setdefault(g.patient(row["case"]), []).append(row["dice"])
    return {p: sum(v) / len(v) for p, v in case_values.items()}


def _stats_row(c: stats.PairedComparison, holm) -> list:
    diff = _fmt_num(c.mean_diff, 3, signed=True)
    if c.ci is not None:
        diff += f" [{c.ci[0]:+.3f}, {c.ci[1]:+.3f}]"
    return [c.label, c.a, c.b, c.n_pairs, diff, _fmt_num(c.statistic, 1), _fmt_p(c.p_value),
            _fmt_p(holm) if holm is not None else "—", _fmt_num(c.effect_r, 2, signed=True), c.reason or ""]


def _fmt_p(p) -> str:
    if p is None:
        return "n/a"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def _fmt_num(x, decimals=3, signed=False) -> str:
    if x is None or not is_finite(x):
        return "n/a"
    return f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}"


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()

