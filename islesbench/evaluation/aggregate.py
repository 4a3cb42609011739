"""Per-case metrics aggregated over cases: the summary statistics and their printable table.

Pure NumPy; the rows are the dicts of `islesbench.evaluation.metrics.case_metrics` (plus ``case``), or
those `islesbench.evaluation.files.read_case_metrics` reads back.
"""

from __future__ import annotations

import math

import numpy as np

from islesbench.errors import IslesbenchError
from islesbench.evaluation.names import (CONVENTION_KEY, CONVENTION_LABELS, EMPTY_CONVENTIONS, LEGACY_CONVENTION,
                                         METRIC_NAMES)

STD_DDOF = 0  # population standard deviation over cases, numpy's default


def summarize(rows: list[dict]) -> dict:
    """Per metric over cases: mean, std, median, n, n_infinite, n_nan and the same over finite values.

    `mean`/`std`/`median` are over all cases, so they are ``inf`` as soon as one case is infinite
    (``std`` then is ``inf`` too, not NaN); `mean_finite`/`std_finite`/`median_finite` are over the
    `n_finite` finite cases and ``None`` when there are none. Standard deviations use ddof=0.
    Infinities stay floats here; `islesbench.evaluation.files.write_case_metrics` writes them as "inf".

    Args:
        rows: per-case dicts, each holding some or all of `METRIC_NAMES` (mm, mL, ratios, counts) and
            optionally ``convention``.

    Returns:
        {"n_cases", "convention" (`rows_convention`, None without rows), "convention_label",
        "std_ddof", "empty_conventions", "metrics": {metric: statistics in the metric's own unit}}.
    """
    metrics = {}
    for name in METRIC_NAMES:
        values = np.array([float(r[name]) for r in rows if name in r], dtype=np.float64)
        metrics[name] = _describe(values)
    convention = rows_convention(rows) if rows else None
    return {
        "n_cases": len(rows),
        CONVENTION_KEY: convention,
        "convention_label": CONVENTION_LABELS.get(convention),
        "std_ddof": STD_DDOF,
        "empty_conventions": dict(EMPTY_CONVENTIONS),
        "metrics": metrics,
    }


def rows_convention(rows: list[dict]) -> str:
    """The one HD/ASSD convention of some rows.

    A row without a ``convention`` value counts as ``LEGACY_CONVENTION``: metrics.csv files written
    before the conventions existed hold medpy's hd and assd.

    Args:
        rows: per-case dicts, at least one.

    Returns:
        The convention name; an IslesbenchError if the rows mix conventions.
    """
    found = {r.get(CONVENTION_KEY) or LEGACY_CONVENTION for r in rows}
    if len(found) > 1:
        raise IslesbenchError(f"rows mix HD/ASSD conventions {sorted(found)}: evaluate them under one convention")
    (convention,) = found
    return convention


def _describe(values: np.ndarray) -> dict:
    nan = np.isnan(values)
    inf = np.isinf(values)
    finite = values[~nan & ~inf]
    valid = values[~nan]
    stats = {
        "n": int(values.size),
        "n_infinite": int(np.count_nonzero(inf)),
        "n_nan": int(np.count_nonzero(nan)),
        "n_finite": int(finite.size),
    }
    if valid.size == 0:
        stats.update(mean=None, std=None, median=None)
    elif np.isinf(valid).any():
        signs = np.unique(np.sign(valid[np.isinf(valid)]))
        stats.update(
            mean=float(valid.mean()) if signs.size == 1 else None,  # +inf and -inf: undefined
            std=math.inf,
            median=float(np.median(valid)),
        )
    else:
        stats.update(mean=float(valid.mean()), std=float(valid.std(ddof=STD_DDOF)), median=float(np.median(valid)))
    if finite.size == 0:
        stats.update(mean_finite=None, std_finite=None, median_finite=None)
    else:
        stats.update(
            mean_finite=float(finite.mean()),
            std_finite=float(finite.std(ddof=STD_DDOF)),
            median_finite=float(np.median(finite)),
        )
    return stats


def format_summary_table(summary: dict) -> str:
    """A short printable table of a summary.

    Args:
        summary: a `summarize` result (or a summary.json read back by `islesbench.evaluation.files.read_summary`).

    Returns:
        Lines joined by newlines: the convention, then per metric mean ± std and median over the finite
        cases (in the metric's unit) and the counts of finite and infinite cases.
    """
    metrics = summary["metrics"]
    lines = []
    if summary.get(CONVENTION_KEY):
        label = CONVENTION_LABELS.get(summary[CONVENTION_KEY], "")
        lines.append(f"hd, assd: {summary[CONVENTION_KEY]} convention ({label})")
    lines.append(f"{'metric':<17} {'mean ± std (finite)':>24} {'median':>10} {'finite':>7} {'inf':>5}")
    for name in METRIC_NAMES:
        if name not in metrics:
            continue
        m = metrics[name]
        if m["mean_finite"] is None:
            mean_std = "-"
        else:
            mean_std = f"{_short(m['mean_finite'])} ± {_short(m['std_finite'])}"
        median = "-" if m["median_finite"] is None else _short(m["median_finite"])
        lines.append(f"{name:<17} {mean_std:>24} {median:>10} {m['n_finite']:>7} {m['n_infinite']:>5}")
    return "\n".join(lines)


def _short(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 1000 else f"{x:.1f}"
