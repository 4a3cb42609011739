"""The metric files on disk: per-case rows in metrics.csv, their summary in summary.json.

Floats are written at full precision (``repr``) and read back exactly; infinities and NaN are written as
``inf``, ``-inf`` and ``nan`` (strings in the JSON, which has no such numbers). Pure NumPy and csv/json.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from islesbench.atomic import write_json_atomic, write_text_atomic
from islesbench.config import read_json_file
from islesbench.errors import IslesbenchError
from islesbench.evaluation.aggregate import summarize
from islesbench.evaluation.names import COUNT_METRICS, METRIC_NAMES


def write_case_metrics(rows: list[dict], metrics_csv, summary_json, extra_summary: dict | None = None) -> dict:
    """Write per-case rows to `metrics_csv` and their `summarize` to `summary_json`, both atomically.

    Columns: ``case``, `METRIC_NAMES`, then any other keys of the rows in order of appearance.
    The summary records the rows' HD/ASSD ``convention`` (rows that mix conventions are refused before
    anything is written) and the list of ``cases``.

    Args:
        rows: per-case dicts (``case`` and the metrics of `islesbench.evaluation.metrics.case_metrics`:
            mm, mL, ratios, counts), in the order to write.
        metrics_csv: path of the CSV to write.
        summary_json: path of the JSON summary to write.
        extra_summary: merged into the top level of the summary (e.g. where the predictions came from).

    Returns:
        The summary as written (infinities still floats).
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
    """The rows of a metrics.csv written by `write_case_metrics`.

    A damaged file (truncated, not text, a missing ``case``/``dice`` column, text where a metric's
    number belongs) is one IslesbenchError naming the file and the line.

    Args:
        metrics_csv: path of the CSV.

    Returns:
        One dict per line: ``case`` a string, counts ints, other numbers floats (``inf`` too, in the
        metric's unit), an empty cell None, other text as written.
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
    """A summary.json written by `write_case_metrics`.

    Args:
        path: path of the JSON file.

    Returns:
        The summary with the "inf"/"-inf"/"nan" strings as floats (case names kept as written); an
        IslesbenchError when the file is unreadable or not a JSON object.
    """
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
        value = _special_as_text(float(value))
        return value if isinstance(value, str) else repr(value)
    return str(value)


def _special_as_text(value: float):
    """nan and ±inf as the words CSV and JSON files hold ("nan", "inf", "-inf"); other floats as they are."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


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
        return _special_as_text(float(obj))
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
