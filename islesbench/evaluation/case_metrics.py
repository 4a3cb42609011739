"""ISLES challenge metrics of one case, their aggregate over cases, and their files on disk.

Every number the benchmark reports comes from this module and the ones it calls. Pure NumPy/SciPy
(no TensorFlow, no ITK or VTK).

Per case, whole volume, millimetres from the voxel spacing:

- ``dice`` = 2|P∩R| / (|P|+|R|); ``precision`` = |P∩R|/|P|; ``recall`` = |P∩R|/|R|.
- ``hd`` and ``assd`` follow the **convention** the caller names, recorded in the row's ``convention``:

  * ``isles`` (default): the ISLES 2015–2018 evaluator's own HD and ASSD, the numbers the challenge
    ranked with (`islesbench.evaluation.surface_isles`: ball-boundary voxels against the 26-connected contour
    for HD; VTK contour points against the ball boundary, mean of the two directed means, for ASSD).
  * ``medpy``: medpy 0.5.2 with ``connectivity=3`` (`islesbench.evaluation.surface_medpy`): surfaces by a full
    3×3×3 erosion, ``hd`` the maximum and ``assd`` the mean of the two directed mean distances.

- ``hd95`` and ``assd_pooled`` are medpy's in both conventions (ISLES scored neither): the 95th
  percentile of both directions pooled, and medpy ≥ 0.5's pooled ``assd``.
- ``nsd_1mm``, ``nsd_2mm``: normalised surface Dice at 1 and 2 mm (`islesbench.evaluation.surface_dice`).
- ``avd_ml`` = |V_P − V_R| in mL (ISLES'22/'24 AVD); ``avd_rel`` = |V_P − V_R| / V_R.
- Lesion-wise (`islesbench.evaluation.lesions`, 26-connected components): ``lesion_tp``, ``lesion_fp``,
  ``lesion_fn``, ``lesion_f1`` and ``lesion_count_diff`` as ISLES'22 computes them; ``lesion_f1_iou50``
  as the ISLES'24 script computes it through panoptica (one-to-one matches at IoU ≥ 0.5).

Empty masks:

- both empty: dice, precision, recall, nsd, lesion F1s = 1; distances = 0; avd = 0; counts 0.
- exactly one empty: dice = precision = recall = nsd = 0, distances = ``inf``; avd_rel = ``inf`` when
  the reference is empty; lesion counts as defined (so both lesion F1s = 0).

Speed: both masks are cropped to the bounding box of their union plus a one-voxel margin, clipped to the
volume. That is exact for every metric: every surface voxel and every nearest partner lies inside it,
the margin keeps medpy's erosion and the ISLES neighbourhoods as on the full volume, and where the
box meets the volume's border the border is the real one.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from islesbench.atomic import write_json_atomic, write_text_atomic
from islesbench.errors import IslesbenchError
from islesbench.evaluation.lesions import lesion_detection  # noqa: F401  (part of this module's API)
from islesbench.evaluation.surface_dice import NSD_TOLERANCES_MM, surface_dice
from islesbench.evaluation.surface_isles import isles_hd_assd
from islesbench.evaluation.surface_medpy import medpy_distance_metrics, surface, surface_distance_maps, surface_distances

# The HD/ASSD conventions: the ISLES 2015–2018 evaluator's, and medpy 0.5.2's (connectivity 3).
CONVENTIONS = ("isles", "medpy")
DEFAULT_CONVENTION = "isles"
CONVENTION_LABELS = {
    "isles": "ISLES 2015–2018 evaluator (validateLabelImages-ISLES: ITK/VTK HD and ASSD)",
    "medpy": "medpy 0.5.2, connectivity 3 (26-connected surfaces)",
}

# The per-case metrics, in the order of the metrics.csv columns (after `case`; `convention` follows).
METRIC_NAMES = (
    "dice",
    "precision",
    "recall",
    "hd",
    "hd95",
    "assd",
    "assd_pooled",
    "nsd_1mm",
    "nsd_2mm",
    "avd_ml",
    "avd_rel",
    "ref_volume_ml",
    "pred_volume_ml",
    "lesion_tp",
    "lesion_fp",
    "lesion_fn",
    "lesion_f1",
    "lesion_count_diff",
    "lesion_f1_iou50",
)
# Metrics in millimetres that are infinite when exactly one mask is empty.
DISTANCE_METRICS = ("hd", "hd95", "assd", "assd_pooled")
# Metrics whose definition depends on the convention.
CONVENTION_METRICS = ("hd", "assd")
# Metrics that are whole counts (written and read back as integers).
COUNT_METRICS = ("lesion_tp", "lesion_fp", "lesion_fn", "lesion_count_diff")
# The column (and summary field) naming the convention of a row's hd and assd.
CONVENTION_KEY = "convention"

# The convention of rows that name none (files written before conventions existed).
LEGACY_CONVENTION = "medpy"

CROP_MARGIN = 1
STD_DDOF = 0  # population standard deviation over cases, numpy's default

EMPTY_CONVENTIONS = {
    "both_empty": "dice, precision, recall, nsd, lesion_f1, lesion_f1_iou50 = 1; hd, hd95, assd, assd_pooled, avd = 0",
    "one_empty": "dice, precision, recall, nsd = 0; hd, hd95, assd, assd_pooled = inf; avd_rel = inf if the reference is empty",
}


# ----------------------------------------------------------------------------------------------------
# One case


def check_convention(convention: str) -> str:
    """`convention` if it is one of `CONVENTIONS`, else an IslesbenchError naming the choices."""
    if convention not in CONVENTIONS:
        raise IslesbenchError(f"unknown metric convention {convention!r}: choose one of {', '.join(CONVENTIONS)}")
    return convention


def case_metrics(pred: np.ndarray, ref: np.ndarray, spacing, convention: str = DEFAULT_CONVENTION) -> dict:
    """Every metric of one case, keyed by `METRIC_NAMES` in order, then ``convention``.

    `pred` and `ref` are masks of the same shape (anything nonzero is lesion), `spacing` the voxel size
    in mm per axis, `convention` the definition of ``hd`` and ``assd`` (`CONVENTIONS`). Distances are
    in mm, volumes in mL.
    """
    check_convention(convention)
    pred = np.asarray(pred).astype(bool, copy=False)
    ref = np.asarray(ref).astype(bool, copy=False)
    if pred.shape != ref.shape:
        raise IslesbenchError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != ref.ndim:
        raise IslesbenchError(f"spacing {spacing} has {len(spacing)} values for a {ref.ndim}D mask")
    if not all(s > 0 and math.isfinite(s) for s in spacing):
        raise IslesbenchError(f"spacing {spacing} must be positive and finite")

    pred, ref = _crop_to_union(pred, ref, CROP_MARGIN)
    n_pred = int(np.count_nonzero(pred))
    n_ref = int(np.count_nonzero(ref))
    n_inter = int(np.count_nonzero(pred & ref)) if n_pred and n_ref else 0
    voxel_ml = float(np.prod(spacing)) / 1000.0

    out = {
        "dice": _dice(n_inter, n_pred, n_ref),
        "precision": _ratio(n_inter, n_pred, both_empty=n_ref == 0),
        "recall": _ratio(n_inter, n_ref, both_empty=n_pred == 0),
    }
    out.update(_distance_metrics(pred, ref, spacing, n_pred, n_ref, convention))
    if ref.ndim == 3:
        out["nsd_1mm"], out["nsd_2mm"] = surface_dice(pred, ref, spacing, NSD_TOLERANCES_MM)
    else:  # surfels are defined on 3-D cubes
        out["nsd_1mm"] = out["nsd_2mm"] = math.nan
    out["avd_ml"] = abs(n_pred - n_ref) * voxel_ml
    out["avd_rel"] = _relative_volume_difference(n_pred, n_ref)
    out["ref_volume_ml"] = n_ref * voxel_ml
    out["pred_volume_ml"] = n_pred * voxel_ml
    out.update(lesion_detection(pred, ref))
    return {**{name: out[name] for name in METRIC_NAMES}, CONVENTION_KEY: convention}


def _crop_to_union(pred: np.ndarray, ref: np.ndarray, margin: int):
    """Both masks cropped to the bounding box of their union plus `margin` (clipped to the volume)."""
    union = pred | ref
    slices = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        hits = np.flatnonzero(np.any(union, axis=other))
        if hits.size == 0:  # both empty: nothing to crop to
            return pred[(slice(0, 0),) * pred.ndim], ref[(slice(0, 0),) * ref.ndim]
        lo = max(int(hits[0]) - margin, 0)
        hi = min(int(hits[-1]) + margin + 1, union.shape[axis])
        slices.append(slice(lo, hi))
    slices = tuple(slices)
    return pred[slices], ref[slices]


def _dice(n_inter: int, n_pred: int, n_ref: int) -> float:
    if n_pred + n_ref == 0:
        return 1.0
    return 2.0 * n_inter / float(n_pred + n_ref)


def _ratio(num: int, den: int, both_empty: bool) -> float:
    """num/den; 1 when both masks are empty, 0 when only the denominator's mask is."""
    if den == 0:
        return 1.0 if both_empty else 0.0
    return num / float(den)


def _relative_volume_difference(n_pred: int, n_ref: int) -> float:
    if n_ref == 0:
        return 0.0 if n_pred == 0 else math.inf
    return abs(n_pred - n_ref) / float(n_ref)


def _distance_metrics(pred, ref, spacing, n_pred: int, n_ref: int, convention: str) -> dict:
    if n_pred == 0 and n_ref == 0:
        return {name: 0.0 for name in DISTANCE_METRICS}
    if n_pred == 0 or n_ref == 0:
        return {name: math.inf for name in DISTANCE_METRICS}
    maps = surface_distance_maps(pred, ref, spacing)
    out = medpy_distance_metrics(pred, ref, spacing, maps)
    if convention == "isles":
        known = [(maps["pred_surface"], maps["to_pred_surface"]), (maps["ref_surface"], maps["to_ref_surface"])]
        out.update(isles_hd_assd(pred, ref, spacing, known))
    return out


# ----------------------------------------------------------------------------------------------------
# Aggregates


def summarize(rows: list[dict]) -> dict:
    """Per metric over cases: mean, std, median, n, n_infinite, n_nan and the same over finite values.

    Also the rows' HD/ASSD ``convention`` (`rows_convention`) and its ``convention_label``.

    `mean`/`std`/`median` are over all cases, so they are ``inf`` as soon as one case is infinite
    (``std`` then is ``inf`` too, not NaN); `mean_finite`/`std_finite`/`median_finite` are over the
    `n_finite` finite cases and ``None`` when there are none. Standard deviations use ddof=0.
    Infinities stay floats here; `write_case_metrics` writes them as the string "inf".
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
    """The one HD/ASSD convention of `rows`; an IslesbenchError if they mix conventions.

    A row without a ``convention`` value counts as ``LEGACY_CONVENTION``: metrics.csv files written
    before the conventions existed hold medpy's hd and assd.
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
    """A short printable table: per metric, mean ± std and median over finite cases, and counts."""
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


# ----------------------------------------------------------------------------------------------------
# Files


def write_case_metrics(rows: list[dict], metrics_csv, summary_json, extra_summary: dict | None = None) -> dict:
    """Write per-case rows to `metrics_csv` and their `summarize` to `summary_json`, both atomically.

    Columns: ``case``, `METRIC_NAMES`, then any other keys of the rows in order of appearance.
    Floats are written at full precision (``repr``), infinities as ``inf``. `extra_summary` is merged
    into the top level of the summary (e.g. where the predictions came from). The summary records the
    rows' HD/ASSD ``convention`` (rows that mix conventions are refused before anything is written).
    Returns the summary.
    """
    summary = dict(extra_summary or {})
    summary.update(summarize(rows))
    summary["cases"] = [str(r.get("case", "")) for r in rows]
    columns = ["case", *METRIC_NAMES]
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_format_cell(row.get(c, "")) for c in columns])
    write_text_atomic(metrics_csv, buf.getvalue())
    write_json_atomic(summary_json, _to_json_safe(summary))
    return summary


def read_case_metrics(metrics_csv) -> list[dict]:
    """The rows of a metrics.csv: ``case`` a string, counts ints, other numbers floats (``inf`` too).

    A damaged file (truncated, not text, a missing ``case``/``dice`` column, text where a metric's
    number belongs) is one IslesbenchError naming the file and the line.
    """
    path = Path(metrics_csv)
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("case", "dice") if c not in (reader.fieldnames or [])]
            if missing:
                raise IslesbenchError(f"{path}: not a per-case metrics file (no {' or '.join(missing)} column)")
            rows = []
            for line, raw in enumerate(reader, 2):
                if None in raw or any(v is None for v in raw.values()):
                    raise IslesbenchError(f"{path}: line {line} has the wrong number of cells (truncated file?)")
                row = {}
                for key, text in raw.items():
                    row[key] = text if key == "case" else _parse_cell(key, text)
                    if key in METRIC_NAMES and isinstance(row[key], str):
                        raise IslesbenchError(f"{path}: line {line}: {key} is {text!r}, not a number")
                rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise IslesbenchError(f"{path}: unreadable metrics file ({type(exc).__name__}: {exc})") from None
    return rows


def read_summary(path) -> dict:
    """A summary.json written by `write_case_metrics`, with "inf"/"-inf"/"nan" strings as floats."""
    from islesbench.config import read_json_file

    data = read_json_file(path, "metrics summary")
    if not isinstance(data, dict):
        raise IslesbenchError(f"{path}: a metrics summary must hold a JSON object")
    return _from_json_safe(data)


def _format_cell(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    return str(value)


def _parse_cell(key: str, text: str):
    if text == "":
        return None
    if key in COUNT_METRICS:
        return int(text)
    try:
        return float(text)  # float() reads "inf", "-inf" and "nan"
    except ValueError:
        return text


_SPECIAL = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _to_json_safe(obj):
    if isinstance(obj, dict):
        return {k: _to_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        obj = float(obj)
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _from_json_safe(obj):
    if isinstance(obj, dict):  # case names are kept as written, even one called "nan"
        return {k: (v if k == "cases" else _from_json_safe(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json_safe(v) for v in obj]
    if isinstance(obj, str) and obj in _SPECIAL:
        return _SPECIAL[obj]
    return obj
