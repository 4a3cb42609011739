"""ISLES challenge metrics of one case, their aggregate over cases, and their files on disk.

Every number the benchmark reports comes from this module. Pure NumPy/SciPy (no TensorFlow).

Definitions (per case, whole volume, millimetres from the voxel spacing):

- ``dice`` = 2|P∩R| / (|P|+|R|); ``precision`` = |P∩R|/|P|; ``recall`` = |P∩R|/|R|.
- Surfaces: a mask minus its binary erosion with the full 3×3×3 structuring element (voxels on the
  volume border count as surface). Surface distances: anisotropic Euclidean distance transform
  (``scipy.ndimage.distance_transform_edt`` with ``sampling=spacing``) of the other mask's surface.
  These are medpy's definitions with ``connectivity=ndim`` (medpy's *default* is ``connectivity=1``,
  a 6-connected erosion, which gives different surfaces).
- ``hd``: the true maximum of both directed surface distances (as ISLES); ``hd95``: the 95th percentile
  (linear interpolation, ``numpy.percentile``) of both directions pooled (as medpy ``hd95``).
- ``assd``: the ISLES 2015/16 evaluator's ASSD, the mean of the two *directed* mean surface
  distances, (mean(d(P→R)) + mean(d(R→P))) / 2. This is the ASSD the reports headline.
- ``assd_pooled``: medpy ≥ 0.5's ``assd``, the mean over both directions pooled into one list, which
  weights the direction with more surface voxels more.
- ``avd_ml`` = |V_P − V_R| in mL; ``avd_rel`` = |V_P − V_R| / V_R.
- Lesion-wise detection on 26-connected components: a reference lesion is a true positive if any
  predicted voxel overlaps it, a false negative otherwise; a predicted component that overlaps no
  reference voxel is a false positive. ``lesion_f1`` = 2·TP / (2·TP + FP + FN).

Empty masks:

- both empty: dice, precision, recall, lesion_f1 = 1; hd, hd95, assd, assd_pooled = 0;
  avd_ml = avd_rel = 0.
- exactly one empty: dice = 0, precision = recall = 0, distances = ``inf``; avd_rel = ``inf`` when the
  reference is empty; lesion counts as defined above (so lesion_f1 = 0).

Speed: both masks are cropped to the bounding box of their union plus a one-voxel margin (exact: every
surface voxel and every nearest partner lies inside it, and the margin keeps the erosion's border
behaviour), and each of the two distance transforms is computed once and reused for every distance
metric. Values are identical to medpy's (see ``benchmarks/metrics.py``).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
from scipy import ndimage

from islesbench.atomic import write_json_atomic, write_text_atomic
from islesbench.errors import IslesbenchError

# The per-case metrics, in the order of the metrics.csv columns (after `case`).
METRIC_NAMES = (
    "dice",
    "precision",
    "recall",
    "hd",
    "hd95",
    "assd",
    "assd_pooled",
    "avd_ml",
    "avd_rel",
    "ref_volume_ml",
    "pred_volume_ml",
    "lesion_tp",
    "lesion_fp",
    "lesion_fn",
    "lesion_f1",
)
# Metrics in millimetres that are infinite when exactly one mask is empty.
DISTANCE_METRICS = ("hd", "hd95", "assd", "assd_pooled")
# Metrics that are whole counts (written and read back as integers).
COUNT_METRICS = ("lesion_tp", "lesion_fp", "lesion_fn")

CROP_MARGIN = 1
STD_DDOF = 0  # population standard deviation over cases, numpy's default

EMPTY_CONVENTIONS = {
    "both_empty": "dice, precision, recall, lesion_f1 = 1; hd, hd95, assd, assd_pooled, avd = 0",
    "one_empty": "dice, precision, recall = 0; hd, hd95, assd, assd_pooled = inf; avd_rel = inf if the reference is empty",
}


# ----------------------------------------------------------------------------------------------------
# One case


def case_metrics(pred: np.ndarray, ref: np.ndarray, spacing) -> dict:
    """Every ISLES metric of one case, keyed by `METRIC_NAMES` in order.

    `pred` and `ref` are masks of the same shape (anything nonzero is lesion), `spacing` the voxel size
    in mm per axis. Distances are in mm, volumes in mL.
    """
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
    out.update(_distance_metrics(pred, ref, spacing, n_pred, n_ref))
    out["avd_ml"] = abs(n_pred - n_ref) * voxel_ml
    out["avd_rel"] = _relative_volume_difference(n_pred, n_ref)
    out["ref_volume_ml"] = n_ref * voxel_ml
    out["pred_volume_ml"] = n_pred * voxel_ml
    out.update(lesion_detection(pred, ref))
    return {name: out[name] for name in METRIC_NAMES}


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


def surface(mask: np.ndarray) -> np.ndarray:
    """The one-voxel surface of a mask: the mask minus its erosion by the full 3^ndim neighbourhood."""
    structure = np.ones((3,) * mask.ndim, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, iterations=1)


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """(distances from each prediction surface voxel to the reference surface, and the reverse), in mm.

    Both masks must be non-empty. Voxels are in C order, as medpy returns them.
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    pred_surface = surface(pred)
    ref_surface = surface(ref)
    to_ref = ndimage.distance_transform_edt(~ref_surface, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=spacing)
    return to_ref[pred_surface], to_pred[ref_surface]


def _distance_metrics(pred, ref, spacing, n_pred: int, n_ref: int) -> dict:
    if n_pred == 0 and n_ref == 0:
        return {name: 0.0 for name in DISTANCE_METRICS}
    if n_pred == 0 or n_ref == 0:
        return {name: math.inf for name in DISTANCE_METRICS}
    d_pr, d_rp = surface_distances(pred, ref, spacing)
    both = np.concatenate((d_pr, d_rp))  # medpy's order: result→reference first
    return {
        "hd": float(max(d_pr.max(), d_rp.max())),
        "hd95": float(np.percentile(both, 95)),
        "assd": float((d_pr.mean() + d_rp.mean()) / 2.0),
        "assd_pooled": float(both.mean()),
    }


def lesion_detection(pred: np.ndarray, ref: np.ndarray) -> dict:
    """Lesion-wise TP/FP/FN and F1 on 26-connected (full neighbourhood) components."""
    structure = np.ones((3,) * ref.ndim, dtype=bool)
    ref_labels, n_ref_lesions = ndimage.label(ref, structure=structure)
    pred_labels, n_pred_lesions = ndimage.label(pred, structure=structure)
    hit_ref = np.unique(ref_labels[pred])
    tp = int(np.count_nonzero(hit_ref))  # label 0 is background
    hit_pred = np.unique(pred_labels[ref])
    fp = n_pred_lesions - int(np.count_nonzero(hit_pred))
    fn = n_ref_lesions - tp
    den = 2 * tp + fp + fn
    f1 = 1.0 if den == 0 else 2.0 * tp / den
    return {"lesion_tp": tp, "lesion_fp": int(fp), "lesion_fn": int(fn), "lesion_f1": f1}


# ----------------------------------------------------------------------------------------------------
# Aggregates


def summarize(rows: list[dict]) -> dict:
    """Per metric over cases: mean, std, median, n, n_infinite, n_nan and the same over finite values.

    `mean`/`std`/`median` are over all cases, so they are ``inf`` as soon as one case is infinite
    (``std`` then is ``inf`` too, not NaN); `mean_finite`/`std_finite`/`median_finite` are over the
    `n_finite` finite cases and ``None`` when there are none. Standard deviations use ddof=0.
    Infinities stay floats here; `write_case_metrics` writes them as the string "inf".
    """
    metrics = {}
    for name in METRIC_NAMES:
        values = np.array([float(r[name]) for r in rows if name in r], dtype=np.float64)
        metrics[name] = _describe(values)
    return {
        "n_cases": len(rows),
        "std_ddof": STD_DDOF,
        "empty_conventions": dict(EMPTY_CONVENTIONS),
        "metrics": metrics,
    }


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
    lines = [f"{'metric':<15} {'mean ± std (finite)':>24} {'median':>10} {'finite':>7} {'inf':>5}"]
    for name in METRIC_NAMES:
        if name not in metrics:
            continue
        m = metrics[name]
        if m["mean_finite"] is None:
            mean_std = "-"
        else:
            mean_std = f"{_short(m['mean_finite'])} ± {_short(m['std_finite'])}"
        median = "-" if m["median_finite"] is None else _short(m["median_finite"])
        lines.append(f"{name:<15} {mean_std:>24} {median:>10} {m['n_finite']:>7} {m['n_infinite']:>5}")
    return "\n".join(lines)


def _short(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 1000 else f"{x:.1f}"


# ----------------------------------------------------------------------------------------------------
# Files


def write_case_metrics(rows: list[dict], metrics_csv, summary_json, extra_summary: dict | None = None) -> dict:
    """Write per-case rows to `metrics_csv` and their `summarize` to `summary_json`, both atomically.

    Columns: ``case``, `METRIC_NAMES`, then any other keys of the rows in order of appearance.
    Floats are written at full precision (``repr``), infinities as ``inf``. `extra_summary` is merged
    into the top level of the summary (e.g. where the predictions came from). Returns the summary.
    """
    columns = ["case", *METRIC_NAMES]
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_format_cell(row.get(c, "")) for c in columns])
    write_text_atomic(metrics_csv, buf.getvalue())

    summary = dict(extra_summary or {})
    summary.update(summarize(rows))
    summary["cases"] = [str(r.get("case", "")) for r in rows]
    write_json_atomic(summary_json, _to_json_safe(summary))
    return summary


def read_case_metrics(metrics_csv) -> list[dict]:
    """The rows of a metrics.csv: ``case`` a string, counts ints, other numbers floats (``inf`` too)."""
    with open(metrics_csv, newline="") as f:
        rows = []
        for raw in csv.DictReader(f):
            row = {}
            for key, text in raw.items():
                row[key] = text if key == "case" else _parse_cell(key, text)
            rows.append(row)
    return rows


def read_summary(path) -> dict:
    """A summary.json written by `write_case_metrics`, with "inf"/"-inf"/"nan" strings as floats."""
    import json

    return _from_json_safe(json.loads(Path(path).read_text()))


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
