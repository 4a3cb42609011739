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


def _summary(name, arch, pretrained, loss, shift):
    base = np.linspace(0.4, 0.8, 8)
    return stats.ConfigSummary(name, arch, pretrained, loss, {f"c{i}": v + shift + 0.001 * i for i, v in enumerate(base)})


def test_versus_best_and_paper_claims_pick_the_right_pairs():
    configs = [
        _summary("pspnet-imagenet-focal", "pspnet", "imagenet", "focal", 0.10),
        _summary("pspnet-imagenet-ce", "pspnet", "imagenet", "ce", 0.05),
        _summary("pspnet-scratch-focal", "pspnet", "scratch", "focal", 0.03),
        _summary("unet-focal", "unet", None, "focal", 0.04),
        _summary("vnet-focal", "vnet", None, "focal", -0.10),
        _summary("threshold", "threshold", None, None, -0.30),
    ]
    best, comparisons = stats.versus_best(configs)
    assert best == "pspnet-imagenet-focal"
    assert {c.a for c in comparisons} == {c.name for c in configs} - {best}
    assert all(c.b == best and c.mean_diff < 0 for c in comparisons)
    claims = {c.label: (c.a, c.b) for c in stats.paper_claims(configs)}
    assert claims == {
        "pretrained > scratch (focal)": ("pspnet-imagenet-focal", "pspnet-scratch-focal"),
        "focal > CE (pspnet-imagenet)": ("pspnet-imagenet-focal", "pspnet-imagenet-ce"),
        "2D > 3D: U-Net vs V-Net (focal)": ("unet-focal", "vnet-focal"),
        "2D > 3D: PSPNet-imagenet vs V-Net (focal)": ("pspnet-imagenet-focal", "vnet-focal"),
    }
