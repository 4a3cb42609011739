"""Paired statistics between configurations: Wilcoxon signed-rank per patient, effect sizes, bootstrap CIs.

The unit is the patient (a patient's slabs are averaged first, reports/results_reader.py): pairs are the
patients both configurations validated, with a finite value of the metric in both. Means and paired
differences get seeded percentile-bootstrap 95 % intervals over patients (a cluster bootstrap).
Zero differences are dropped before ranking (Wilcoxon's original treatment, scipy's default
`zero_method="wilcox"`), and the effect size uses the same non-zero differences: the matched-pairs
rank-biserial correlation r = (R+ − R−) / (R+ + R−) (Kerby 2014), positive when the first configuration
is better. When no test is possible the result says why instead of a p-value.

Power (`power_estimate`). For a paired comparison on n patients, each arm run with s seeds, the variance of
the grid's mean difference is taken as

    Var(Δ) ≈ σ_d² / (ARE · n) + (σ_A² + σ_B²) / s

where σ_d is the SD (ddof = 1) of the per-patient differences (seed-averaged, as tested), σ_A and σ_B the SDs
(ddof = 1) of each arm's per-seed mean Dice (what a test over the patients of one set of trained models cannot
see: one seed's luck moves the whole arm), and ARE = 3/π ≈ 0.955 the asymptotic relative efficiency of the
Wilcoxon signed-rank test to the paired t-test under normal differences (Lehmann 1975; G*Power's A.R.E.
method), so the signed-rank test needs n/ARE patients where the t-test needs n. The smallest difference
detected with power 1 − β at two-sided level α is

    δ_min = (z_{1−α/2} + z_{1−β}) · √Var(Δ),

and the patients (seeds) needed for a difference δ solve δ = δ_min for n (s), holding the other fixed; when
neither alone reaches δ, each term gets half the variance and both numbers are given together. The
level is Holm's strictest step, α = 0.05 / m over the m tested pairs of a table; and at least
max(MIN_NONZERO_PAIRS, ⌈log2(2/α)⌉) patients are needed at all, the exact test's smallest two-sided p being
2/2ⁿ. With one seed the seed SD is unmeasured: the seed term is left out (and said so), so δ_min is a lower
bound. With several seeds the seed noise within a patient is in both terms (σ_d averages it over the seeds,
σ_A and σ_B over the patients), so the estimate errs towards a larger δ_min. The normal approximation is rough
at the few patients of a quick grid, and a two-seed SD is itself uncertain: it sizes a grid, it is no test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# SciPy imported inside functions only, so that `islesbench --help` and start-up stay fast.

# Patient-level (cluster) bootstrap: resamples, confidence level and the default seed.
BOOTSTRAP_RESAMPLES = 4000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0

# Below this many non-zero differences a two-sided exact p-value can never reach 0.05 (n=5 gives
# at best 2/32 = 0.0625), so a test would only look informative.
MIN_NONZERO_PAIRS = 6

# Power analysis: the level of one test, the power asked for, the difference a reader cares about (Dice), and the
# Wilcoxon signed-rank test's asymptotic relative efficiency to the paired t-test under normal differences.
ALPHA = 0.05
POWER = 0.80
TARGET_DIFFERENCE = 0.05
WILCOXON_ARE = 3 / math.pi


@dataclass(frozen=True)
class PairedComparison:
    """The outcome of one paired comparison of `a` against `b` on one metric."""

    a: str
    b: str
    metric: str
    n_pairs: int  # cases with a finite value in both
    n_nonzero: int  # pairs whose difference is not zero (the ones ranked)
    mean_diff: float | None  # mean of a − b over the pairs
    statistic: float | None = None
    p_value: float | None = None
    effect_r: float | None = None
    reason: str | None = None  # why there is no p-value, when there is none
    label: str = ""  # what the comparison stands for, e.g. "pretrained vs scratch (focal)"
    ci: tuple | None = None  # 95 % bootstrap interval of mean_diff (over the paired units)
    sd_diff: float | None = None  # SD (ddof = 1) of the paired differences, for the power analysis

    @property
    def tested(self) -> bool:
        """True when a p-value was computed."""
        return self.p_value is not None


def rank_biserial(diffs) -> float:
    """Matched-pairs rank-biserial correlation of the non-zero differences `diffs`."""
    from scipy.stats import rankdata

    d = np.asarray(diffs, dtype=float)
    d = d[d != 0]
    if d.size == 0:
        return float("nan")
    ranks = rankdata(np.abs(d))
    r_plus = ranks[d > 0].sum()
    r_minus = ranks[d < 0].sum()
    return float((r_plus - r_minus) / (r_plus + r_minus))


def bootstrap_ci(values, seed: int = BOOTSTRAP_SEED, n_resamples: int = BOOTSTRAP_RESAMPLES,
                 confidence: float = CONFIDENCE) -> tuple | None:
    """Percentile bootstrap interval of the mean of `values` (one value per patient), seeded.

    Resampling patients, not slabs, is the cluster bootstrap: a patient's slabs were averaged first.
    None with fewer than two finite values; (v, v) when every value is equal.
    """
    from scipy.stats import bootstrap

    x = np.asarray([float(v) for v in values if is_finite(v)], dtype=float)
    if x.size < 2:
        return None
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    res = bootstrap((x,), np.mean, n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                    vectorized=True, random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_values(a: dict, b: dict) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Sorted common cases of two {case: value} maps with finite values in both, and the values."""
    cases = sorted(c for c in set(a) & set(b) if is_finite(a[c]) and is_finite(b[c]))
    return cases, np.array([a[c] for c in cases], dtype=float), np.array([b[c] for c in cases], dtype=float)


def paired_wilcoxon(a: dict, b: dict, a_name: str = "a", b_name: str = "b", metric: str = "dice",
                    label: str = "", min_nonzero: int = MIN_NONZERO_PAIRS) -> PairedComparison:
    """Two-sided Wilcoxon signed-rank test of a − b over the cases both {case: value} maps share."""
    from scipy.stats import wilcoxon

    cases, va, vb = paired_values(a, b)
    diffs = va - vb
    n = len(cases)
    nonzero = int(np.count_nonzero(diffs))
    common = dict(a=a_name, b=b_name, metric=metric, n_pairs=n, n_nonzero=nonzero, label=label)
    if n == 0:
        return PairedComparison(mean_diff=None, reason="no case with a finite value in both", **common)
    mean_diff = float(diffs.mean())
    common["ci"] = bootstrap_ci(diffs)
    common["sd_diff"] = float(diffs.std(ddof=1)) if n > 1 else None
    if nonzero == 0:
        return PairedComparison(mean_diff=mean_diff, reason="all paired differences are zero", **common)
    if nonzero < min_nonzero:
        return PairedComparison(
            mean_diff=mean_diff,
            effect_r=rank_biserial(diffs),
            reason=f"too few pairs: {nonzero} non-zero difference(s), need at least {min_nonzero}",
            **common,
        )
    result = wilcoxon(va, vb, zero_method="wilcox", alternative="two-sided")
    return PairedComparison(
        mean_diff=mean_diff,
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        effect_r=rank_biserial(diffs),
        **common,
    )


@dataclass(frozen=True)
class PowerEstimate:
    """What a paired comparison could detect (module docstring: the formula), and what it would need."""

    alpha: float  # the two-sided level of the test
    detectable: float | None  # smallest mean difference detected with POWER (None: no test possible)
    patients_needed: int | None  # patients for `target` at the seeds used (None: the seed term alone is above it)
    seeds_needed: int | None  # seeds per arm for `target` at the patients used (None: not reachable, or unknown)
    target: float = TARGET_DIFFERENCE
    note: str = ""  # what the estimate leaves out or why a number is missing
    together: tuple | None = None  # (patients, seeds) for `target` when neither alone reaches it (half the variance each)


def min_patients(alpha: float) -> int:
    """The fewest patients with which the paired test can reach `alpha` at all: MIN_NONZERO_PAIRS, and the exact
    signed-rank test's smallest two-sided p-value, 2/2ⁿ, at most `alpha`."""
    return max(MIN_NONZERO_PAIRS, math.ceil(math.log2(2 / alpha)))


def power_estimate(sd_diff: float, n_patients: int, seed_sds=(), n_seeds: int = 1, alpha: float = ALPHA,
                   power: float = POWER, target: float = TARGET_DIFFERENCE) -> PowerEstimate:
    """The smallest difference a paired Wilcoxon test on `n_patients` detects with `power`, and the patients or
    seeds needed to detect `target` (the module docstring gives the formula).

    Args:
        sd_diff: SD (ddof = 1) of the per-patient paired differences.
        n_patients: patients paired.
        seed_sds: SD (ddof = 1) of each arm's per-seed mean; empty when fewer than two seeds ran (unmeasured).
        n_seeds: seeds per arm.
        alpha: two-sided level (Holm's strictest step, 0.05/m, in the report's tables).
        power: the power asked for.
        target: the difference to size the grid for.

    Returns:
        A PowerEstimate; `detectable` None when `n_patients` is below `min_patients(alpha)`.
    """
    from scipy.stats import norm

    z = float(norm.ppf(1 - alpha / 2) + norm.ppf(power))
    seed_var = sum(float(sd) ** 2 for sd in seed_sds)
    notes = [] if seed_sds else ["seed SD unmeasured (one seed): patient term only, a lower bound"]
    patient_var = float(sd_diff) ** 2 / (WILCOXON_ARE * max(n_patients, 1))
    detectable = z * math.sqrt(patient_var + seed_var / max(n_seeds, 1))
    if n_patients < min_patients(alpha):
        detectable = None
        notes.append(f"{n_patients} patients: at least {min_patients(alpha)} needed for any test at α = {alpha:.3g}")
    budget = (target / z) ** 2  # the variance at which `target` is detected with `power`
    patients_needed = None
    if budget > seed_var / max(n_seeds, 1):
        patients_needed = max(min_patients(alpha), math.ceil(
            float(sd_diff) ** 2 / (WILCOXON_ARE * (budget - seed_var / max(n_seeds, 1)))))
    seeds_needed = None
    if seed_sds and budget > patient_var:
        seeds_needed = max(1, math.ceil(seed_var / (budget - patient_var)))
    together = None
    if patients_needed is None and seeds_needed is None and seed_sds:
        together = (max(min_patients(alpha), math.ceil(float(sd_diff) ** 2 / (WILCOXON_ARE * budget / 2))),
                    max(1, math.ceil(seed_var / (budget / 2))))
    return PowerEstimate(alpha, detectable, patients_needed, seeds_needed, target, "; ".join(notes), together)


def holm_adjust(p_values: list) -> list:
    """Holm–Bonferroni adjusted p-values (None entries are kept as None and not counted)."""
    indexed = [(p, i) for i, p in enumerate(p_values) if p is not None]
    m = len(indexed)
    adjusted = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(indexed)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class ConfigSummary:
    """A configuration for the statistics: its name and per-patient values of one metric."""

    name: str
    values: dict  # patient -> metric value


def versus_best(configs: list[ConfigSummary], metric: str = "dice") -> tuple[str | None, list[PairedComparison]]:
    """The configuration with the highest mean metric, and each other one compared against it."""
    ranked = [c for c in configs if any(is_finite(v) for v in c.values.values())]
    if not ranked:
        return None, []
    best = max(ranked, key=lambda c: _finite_mean(c.values.values()))
    comparisons = [
        paired_wilcoxon(c.values, best.values, c.name, best.name, metric, label=f"{c.name} vs best")
        for c in configs
        if c.name != best.name
    ]
    return best.name, comparisons


def is_finite(x) -> bool:
    """True for a number that is neither NaN nor infinite (False for anything that is not a number)."""
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _finite_mean(values) -> float:
    vals = [float(v) for v in values if is_finite(v)]
    return sum(vals) / len(vals) if vals else float("-inf")
