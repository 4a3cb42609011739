"""Paired statistics: agreement with scipy, known answers, and the cases where no test is possible."""

import math

import numpy as np
import pytest
from scipy.stats import wilcoxon

from islesbench.reports import stats


def _maps(a, b):
    cases = [f"case_{i}" for i in range(len(a))]
    return dict(zip(cases, a)), dict(zip(cases, b))


def test_matches_scipy_on_random_pairs():
    rng = np.random.default_rng(1)
    a = rng.uniform(0.3, 0.9, 25)
    b = a - rng.normal(0.03, 0.05, 25)
    ma, mb = _maps(a, b)
    result = stats.paired_wilcoxon(ma, mb, "A", "B")
    expected = wilcoxon(a, b)
    assert result.tested
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.n_pairs == 25 and result.mean_diff == pytest.approx(np.mean(a - b))


def test_known_answer_all_first_better():
    # Six distinct positive differences: exact two-sided p = 2 / 2**6, W = 0, r = +1.
    a = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    b = [x - d for x, d in zip(a, [0.01, 0.02, 0.03, 0.04, 0.05, 0.06])]
    result = stats.paired_wilcoxon(*_maps(a, b))
    assert result.p_value == pytest.approx(2 / 64)
    assert result.statistic == 0
    assert result.effect_r == pytest.approx(1.0)
    assert result.mean_diff == pytest.approx(0.035)


def test_rank_biserial_by_hand():
    # |d| ranks 1, 2, 3 -> R+ = 1 + 3, R- = 2 -> r = (4 - 2) / 6; zeros dropped; ties get mean ranks.
    assert stats.rank_biserial([1.0, -2.0, 3.0, 0.0]) == pytest.approx(1 / 3)
    assert stats.rank_biserial([1.0, -1.0]) == pytest.approx(0.0)
    assert math.isnan(stats.rank_biserial([0.0, 0.0]))


def test_zero_differences_and_too_few_pairs_are_reported_not_raised():
    same = stats.paired_wilcoxon(*_maps([0.5] * 8, [0.5] * 8))
    assert not same.tested and "zero" in same.reason and same.mean_diff == 0
    few = stats.paired_wilcoxon(*_maps([0.5, 0.6, 0.7], [0.4, 0.5, 0.5]))
    assert not few.tested and "too few" in few.reason and few.n_pairs == 3
    none = stats.paired_wilcoxon({"a": 0.5}, {"b": 0.5})
    assert not none.tested and none.n_pairs == 0 and none.mean_diff is None


def test_zeros_are_dropped_like_scipy():
    a = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.4, 0.3]
    b = [0.5, 0.55, 0.72, 0.7, 0.85, 0.9, 0.4, 0.2]  # two zero differences
    result = stats.paired_wilcoxon(*_maps(a, b))
    assert result.n_pairs == 8 and result.n_nonzero == 6
    assert result.p_value == pytest.approx(wilcoxon(a, b, zero_method="wilcox").pvalue)


def test_non_finite_values_leave_the_pairs():
    a = {"c1": 0.5, "c2": float("inf"), "c3": float("nan"), "c4": 0.7}
    b = {"c1": 0.4, "c2": 0.3, "c3": 0.3, "c4": 0.6, "c5": 0.9}
    cases, va, vb = stats.paired_values(a, b)
    assert cases == ["c1", "c4"] and list(va) == [0.5, 0.7] and list(vb) == [0.4, 0.6]


def test_holm_adjustment_by_hand():
    assert stats.holm_adjust([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06])
    assert stats.holm_adjust([]) == []


def _summary(name, shift):
    base = np.linspace(0.4, 0.8, 8)
    return stats.ConfigSummary(name, {f"p{i}": v + shift + 0.001 * i for i, v in enumerate(base)})


def test_versus_best_picks_the_best_and_compares_every_other():
    configs = [_summary("a", 0.10), _summary("b", 0.05), _summary("c", -0.30)]
    best, comparisons = stats.versus_best(configs)
    assert best == "a"
    assert {c.a for c in comparisons} == {"b", "c"}
    assert all(c.b == "a" and c.mean_diff < 0 for c in comparisons)


def test_bootstrap_interval_matches_scipy_and_is_seeded():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(1)
    values = rng.normal(0.6, 0.2, 25)
    lo, hi = stats.bootstrap_ci(values)
    ref = bootstrap((values,), np.mean, n_resamples=stats.BOOTSTRAP_RESAMPLES, method="percentile",
                    random_state=np.random.default_rng(stats.BOOTSTRAP_SEED)).confidence_interval
    assert (lo, hi) == pytest.approx((ref.low, ref.high))
    assert lo < values.mean() < hi
    assert stats.bootstrap_ci(values) == (lo, hi)  # same seed, same interval
    assert stats.bootstrap_ci([0.5]) is None and stats.bootstrap_ci([0.3, 0.3, 0.3]) == (0.3, 0.3)
    # the 95 % interval of a normal mean is about ±1.96 standard errors wide
    assert hi - lo == pytest.approx(2 * 1.96 * values.std(ddof=1) / np.sqrt(25), rel=0.2)


def test_paired_comparison_carries_the_interval_of_the_mean_difference():
    a = {f"p{i}": 0.5 + 0.01 * i for i in range(10)}
    b = {f"p{i}": 0.45 + 0.012 * i for i in range(10)}
    c = stats.paired_wilcoxon(a, b)
    diffs = [a[k] - b[k] for k in sorted(a)]
    assert c.ci == pytest.approx(stats.bootstrap_ci(diffs))
    assert c.ci[0] <= c.mean_diff <= c.ci[1]


def test_power_estimate_follows_the_documented_formula():
    from scipy.stats import norm

    sd_diff, n, seed_sds, s, alpha = 0.05, 40, (0.01, 0.02), 3, 0.05 / 4
    est = stats.power_estimate(sd_diff, n, seed_sds, s, alpha=alpha)
    z = norm.ppf(1 - alpha / 2) + norm.ppf(0.8)
    var = sd_diff ** 2 / (3 / math.pi * n) + (0.01 ** 2 + 0.02 ** 2) / s
    assert est.detectable == pytest.approx(z * math.sqrt(var))
    # The patients (seeds) needed for 0.05 Dice are the fewest at which the detectable difference reaches it.
    assert stats.power_estimate(sd_diff, est.patients_needed, seed_sds, s, alpha=alpha).detectable <= 0.05
    assert stats.power_estimate(sd_diff, est.patients_needed - 1, seed_sds, s, alpha=alpha).detectable > 0.05
    at_seeds = stats.power_estimate(sd_diff, n, seed_sds, est.seeds_needed, alpha=alpha)
    assert at_seeds.detectable <= 0.05 < stats.power_estimate(sd_diff, n, seed_sds, est.seeds_needed - 1,
                                                               alpha=alpha).detectable


def test_power_estimate_says_what_it_cannot_know_or_reach():
    one_seed = stats.power_estimate(0.1, 20)
    assert one_seed.seeds_needed is None and "seed SD unmeasured" in one_seed.note
    # Too few patients for any test at α = 0.05/4: ⌈log2(2/0.0125)⌉ = 8.
    assert stats.min_patients(0.0125) == 8
    assert stats.power_estimate(0.1, 7, alpha=0.0125).detectable is None
    # A seed spread above the target: no number of patients helps.
    assert stats.power_estimate(0.1, 20, (0.05, 0.05), 1).patients_needed is None


def test_when_neither_patients_nor_seeds_alone_reach_the_target_both_are_given_together():
    est = stats.power_estimate(0.15, 16, (0.03, 0.03), 2, alpha=0.01)
    assert est.patients_needed is None and est.seeds_needed is None
    patients, seeds = est.together
    assert stats.power_estimate(0.15, patients, (0.03, 0.03), seeds, alpha=0.01).detectable <= 0.05
