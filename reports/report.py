"""Write the comparison report of a runs folder: report.md, report.html (self-contained) and results.csv.

Reads only the results layout (`islesbench.results`) and `benchmark.json`; it never trains or predicts.
Per configuration: mean ± standard deviation over cases of Dice, precision, recall, HD, HD95, ASSD, AVD
and lesion F1; distances are averaged over the cases where they are finite, with the count of infinite
cases beside them. Paired Wilcoxon tests against the best configuration and for the paper's claims,
figures, and the cells of a benchmark that did not run, with the command that would run them.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from islesbench import results
from islesbench.errors import IslesbenchError
from islesbench.metrics import METRIC_NAMES, STD_DDOF, summarize

from islesbench.reports import figures, stats
from islesbench.reports.grid import benchmark_record_path

# The per-case columns of validation/metrics.csv, in order.
METRIC_COLUMNS = METRIC_NAMES
DISTANCE_COLUMNS = ("hd", "hd95", "assd")
# (column, heading, decimals) of the comparison table.
TABLE_METRICS = (("dice", "Dice", 3), ("precision", "Precision", 3), ("recall", "Recall", 3),
                 ("hd", "HD (mm)", 1), ("hd95", "HD95 (mm)", 1), ("assd", "ASSD (mm)", 1),
                 ("avd_ml", "AVD (mL)", 2), ("lesion_f1", "Lesion F1", 3))

# Abulnaga & Rubin 2018, 5-fold CV on the 94 ISLES 2018 training cases (PAPER.md).
PAPER_NUMBERS = {
    "pspnet-imagenet-focal": "0.54 ± 0.09",
    "pspnet-imagenet-ce": "0.49 ± 0.11",
    "pspnet-scratch-focal": "≈ 7 points below pretrained",
    "pspnet-scratch-ce": "≈ 7 points below pretrained",
    "unet-focal": "below PSPNet",
    "unet-ce": "below PSPNet",
    "vnet-focal": "below PSPNet; 3D worst",
    "vnet-ce": "below PSPNet; 3D worst",
}
PAPER_ENSEMBLE = "0.57 (training leaderboard)"
PAPER_COHORT = "ISLES 2018 training (94 cases, 5-fold CV)"

# Keys under which an ensemble's config.json may list its member runs.
ENSEMBLE_MEMBER_KEYS = ("members", "runs", "run_dirs", "member_runs")

FIGURE_DIR = "figures"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
RESULTS_CSV = "results.csv"


# ---------------------------------------------------------------------------------------------------
# Reading the results layout


@dataclass
class RunResults:
    """The validated cases of one configuration, as read from its run folder."""

    name: str
    run_dir: Path
    config: dict
    cohort: str
    rows: list  # per-case dicts: case, fold, and METRIC_COLUMNS
    folds: list = field(default_factory=list)  # folds with a metrics.csv
    unfinished_folds: list = field(default_factory=list)  # folds with metrics.csv but no DONE marker
    histories: dict = field(default_factory=dict)  # fold -> history.csv path
    is_ensemble: bool = False

    def values(self, metric: str) -> dict:
        """{case: value} of one metric."""
        return {r["case"]: r[metric] for r in self.rows}

    def mean(self, metric: str = "dice") -> float:
        """Mean over the cases where the metric is finite (NaN when there is none)."""
        vals = [v for v in self.values(metric).values() if _finite(v)]
        return sum(vals) / len(vals) if vals else float("nan")

    def prediction_path(self, case: str, fold: int) -> Path:
        """The predicted mask of `case` (validated in `fold`)."""
        return results.FoldPaths(self.run_dir / f"fold_{fold}").mask_path(case)

    def raw_data(self) -> str | None:
        """The raw ISLES-layout cohort the run was trained on, if its config records it."""
        for key in ("raw_data", "raw"):
            if self.config.get(key):
                return str(self.config[key])
        return None


def read_case_metrics(path) -> list[dict]:
    """Per-case rows of a validation/metrics.csv with every metric a float (`inf` kept, blanks NaN)."""
    from islesbench.metrics import read_case_metrics as read_rows

    return [{"case": str(r["case"]), **{c: _to_float(r.get(c)) for c in METRIC_COLUMNS}} for r in read_rows(path)]


def is_ensemble_config(config: dict, name: str) -> bool:
    """True for the output of `islesbench ensemble` (same layout as a run, no model of its own)."""
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    return (model.get("arch") == "ensemble" or config.get("kind") == "ensemble" or name.startswith("ensemble")
            or any(isinstance(config.get(k), list) for k in ENSEMBLE_MEMBER_KEYS))


def ensemble_members(config: dict) -> list[str]:
    """The run folders an ensemble averaged, as recorded in its config.json (empty if unrecorded)."""
    for key in ENSEMBLE_MEMBER_KEYS:
        if isinstance(config.get(key), list):
            return [Path(str(m)).name for m in config[key]]
    return []


def read_run(run_dir) -> RunResults | None:
    """A run folder's results (folds, or an ensemble laid out like a fold); None when it has none."""
    run_dir = Path(run_dir)
    config = results.read_run_config(run_dir)
    name = str(config.get("name") or run_dir.name)
    cohort = str(config.get("cohort") or "unknown cohort (config.json has no 'cohort')")
    run = RunResults(name=name, run_dir=run_dir, config=config, cohort=cohort, rows=[],
                     is_ensemble=is_ensemble_config(config, name))
    for fold, paths in results.list_folds(run_dir):
        if not paths.metrics_csv.exists():
            continue
        run.folds.append(fold)
        if not paths.is_done():
            run.unfinished_folds.append(fold)
        run.rows += [{**r, "fold": fold} for r in read_case_metrics(paths.metrics_csv)]
        if paths.history_csv.exists():
            run.histories[fold] = paths.history_csv
    if not run.rows:
        return None
    return run


def collect_runs(runs_dir) -> tuple[list[RunResults], list[str]]:
    """Every run with results under `runs_dir`, and notes on folders that have none yet."""
    runs, notes = [], []
    for run_dir in results.list_runs(runs_dir):
        try:
            run = read_run(run_dir)
        except (OSError, ValueError, KeyError) as exc:
            notes.append(f"{run_dir.name}: unreadable results ({exc})")
            continue
        if run is None:
            notes.append(f"{run_dir.name}: no validation/metrics.csv yet")
        else:
            runs.append(run)
    return runs, notes


def read_benchmark_record(runs_dir) -> dict | None:
    """`benchmark.json` of the runs folder, if `islesbench benchmark` wrote one."""
    path = benchmark_record_path(runs_dir)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


# ---------------------------------------------------------------------------------------------------
# Aggregates


@dataclass(frozen=True)
class Aggregate:
    """Mean ± standard deviation over the finite values of one metric, with counts of what was left out."""

    mean: float
    std: float
    n: int  # finite values averaged
    n_inf: int
    n_nan: int


def aggregate(values) -> Aggregate:
    """Mean and standard deviation (ddof as islesbench.metrics.STD_DDOF) of the finite values."""
    described = summarize([{"dice": float(v)} for v in values])["metrics"]["dice"]
    nan = float("nan")
    return Aggregate(
        mean=nan if described["mean_finite"] is None else described["mean_finite"],
        std=nan if described["std_finite"] is None else described["std_finite"],
        n=described["n_finite"],
        n_inf=described["n_infinite"],
        n_nan=described["n_nan"],
    )


def paper_number(run: RunResults) -> str:
    """The paper's published Dice for this configuration, or an empty string."""
    if run.is_ensemble or run.name.startswith("ensemble"):
        return PAPER_ENSEMBLE
    return PAPER_NUMBERS.get(run.name, "")


def order_runs(runs: list[RunResults]) -> list[RunResults]:
    """Grouped by cohort, best mean Dice first within each."""
    return sorted(runs, key=lambda r: (r.cohort, -_nan_to(r.mean("dice"), -1.0), r.name))


def comparison_rows(runs: list[RunResults]) -> list[dict]:
    """One dict per configuration with every number of the comparison table."""
    out = []
    for run in order_runs(runs):
        row = {"run": run, "name": run.name, "cohort": run.cohort, "cases": len(run.rows),
               "folds": len(run.folds),
               "inf_cases": sum(1 for r in run.rows if any(math.isinf(r[c]) for c in DISTANCE_COLUMNS)),
               "paper": paper_number(run)}
        for col, _, _ in TABLE_METRICS:
            row[col] = aggregate(r[col] for r in run.rows)
        out.append(row)
    return out


def config_summaries(runs: list[RunResults], metric: str = "dice") -> list[stats.ConfigSummary]:
    """What stats needs of each run: arch, pretrained tag, loss and per-case values."""
    from islesbench.config import pretrained_tag

    out = []
    for run in runs:
        model = run.config.get("model") if isinstance(run.config.get("model"), dict) else {}
        loss = run.config.get("loss") if isinstance(run.config.get("loss"), dict) else {}
        arch = None if run.is_ensemble else model.get("arch")
        pretrained = pretrained_tag(model.get("pretrained")) if arch == "pspnet" else None
        loss_name = loss.get("name") if arch not in (None, "threshold") else None
        out.append(stats.ConfigSummary(run.name, arch, pretrained, loss_name, run.values(metric)))
    return out


# ---------------------------------------------------------------------------------------------------
# A tiny document model, rendered to both Markdown and HTML


@dataclass
class Link:
    """Table cell text with a relative link."""

    text: str
    href: str


def _heading(level, text):
    return ("h", level, text)


def _para(text):
    return ("p", text)


def _table(headers, rows):
    return ("table", headers, rows)


def _image(path, caption):
    return ("img", path, caption)


def _code(text):
    return ("code", text)


def render_markdown(blocks, out_dir: Path) -> str:
    """Markdown text of the document; images are relative links into the output folder."""
    lines = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            lines += ["#" * block[1] + " " + block[2], ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "code":
            lines += ["```", block[1], "```", ""]
        elif kind == "img":
            rel = os.path.relpath(block[1], out_dir)
            lines += [f"![{block[2]}]({rel})", "", f"*{block[2]}*", ""]
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines.append("| " + " | ".join(headers) + " |")
            lines.append("|" + "|".join("---" for _ in headers) + "|")
            for row in rows:
                lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _md_cell(cell) -> str:
    if isinstance(cell, Link):
        return f"[{_md_escape(cell.text)}]({cell.href})"
    return _md_escape(str(cell))


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.88em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f0f0f0}td:first-child,th:first-child,td:nth-child(2){text-align:left}
pre{background:#f6f6f6;padding:0.6em;overflow-x:auto;font-size:0.85em}
figure{margin:1em 0}figcaption{font-style:italic;font-size:0.9em;color:#555}
img{max-width:100%;height:auto;border:1px solid #eee}
"""


def render_html(blocks, title: str) -> str:
    """A self-contained HTML page: images are embedded as base64 PNG."""
    body = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            body.append(f"<h{block[1]}>{_inline_html(block[2])}</h{block[1]}>")
        elif kind == "p":
            body.append(f"<p>{_inline_html(block[1])}</p>")
        elif kind == "code":
            body.append(f"<pre>{html.escape(block[1])}</pre>")
        elif kind == "img":
            data = base64.b64encode(Path(block[1]).read_bytes()).decode("ascii")
            cap = html.escape(block[2])
            body.append(f'<figure><img alt="{cap}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{cap}</figcaption></figure>")
        elif kind == "table":
            headers, rows = block[1], block[2]
            parts = ["<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr></thead><tbody>"]
            for row in rows:
                parts.append("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>")
            parts.append("</tbody></table>")
            body.append("".join(parts))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _html_cell(cell) -> str:
    if isinstance(cell, Link):
        return f'<a href="{html.escape(cell.href, quote=True)}">{html.escape(cell.text)}</a>'
    return html.escape(str(cell))


def _inline_html(text: str) -> str:
    """HTML of a line with Markdown's `code` and **bold** spans (the only inline markup used here)."""
    out, parts = [], html.escape(text).split("`")
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{part}</code>")
        else:
            bold = part.split("**")
            out.append("".join(f"<b>{b}</b>" if j % 2 else b for j, b in enumerate(bold)))
    return "".join(out)


# ---------------------------------------------------------------------------------------------------
# The report


def _fmt(agg: Aggregate, decimals: int, distance: bool = False) -> str:
    if agg.n == 0:
        text = "n/a"
    elif agg.n == 1:
        text = f"{agg.mean:.{decimals}f}"
    else:
        text = f"{agg.mean:.{decimals}f} ± {agg.std:.{decimals}f}"
    if distance and agg.n_inf:
        text += f" ({agg.n_inf} inf)"
    if agg.n_nan:
        text += f" ({agg.n_nan} undefined)"
    return text


def _fmt_p(p) -> str:
    if p is None:
        return "n/a"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def _fmt_num(x, decimals=3, signed=False) -> str:
    if x is None or not _finite(x):
        return "n/a"
    return f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}"


def _comparison_table(rows, out_dir: Path):
    headers = (["Configuration", "Cohort", "Folds", "Cases"] + [h for _, h, _ in TABLE_METRICS]
               + ["Cases with inf distance", "Paper Dice (" + PAPER_COHORT + ")"])
    body = []
    for row in rows:
        run = row["run"]
        link = Link(row["name"], _rel(run.run_dir / "config.json", out_dir))
        cells = [link, row["cohort"], row["folds"], row["cases"]]
        cells += [_fmt(row[col], dec, col in DISTANCE_COLUMNS) for col, _, dec in TABLE_METRICS]
        cells += [row["inf_cases"], row["paper"] or "—"]
        body.append(cells)
    return _table(headers, body)


def _per_fold_table(runs: list[RunResults]):
    folds = sorted({f for r in runs for f in r.folds})
    headers = ["Configuration"] + [f"fold {f}" for f in folds]
    body = []
    for run in order_runs(runs):
        cells = [run.name]
        for f in folds:
            vals = [r["dice"] for r in run.rows if r["fold"] == f]
            cells.append(_fmt(aggregate(vals), 3) + (" (unfinished)" if f in run.unfinished_folds else "")
                         if vals else "—")
        body.append(cells)
    return _table(headers, body) if folds and body else None


def _stats_blocks(runs: list[RunResults]) -> list:
    blocks = [_heading(2, "Statistics"),
              _para("Paired two-sided Wilcoxon signed-rank tests on per-case Dice (`scipy.stats.wilcoxon`, zero "
                    "differences dropped). Effect size: matched-pairs rank-biserial correlation r = (R+ − R−)/(R+ + R−), "
                    "positive when the first configuration is better. Mean difference = first − second. "
                    f"No p-value is given with fewer than {stats.MIN_NONZERO_PAIRS} non-zero differences. "
                    "Holm-adjusted p-values correct for the comparisons against the best configuration.")]
    headers = ["Comparison", "First", "Second", "n pairs", "Mean Dice diff", "W", "p", "p (Holm)", "r", "Note"]
    for cohort in sorted({r.cohort for r in runs}):
        group = [r for r in runs if r.cohort == cohort]
        summaries = config_summaries(group)
        best, vs_best = stats.versus_best(summaries)
        if best is None:
            continue
        blocks.append(_heading(3, f"Cohort: {cohort}"))
        blocks.append(_para(f"Best configuration by mean Dice: **{best}**."))
        holm = stats.holm_adjust([c.p_value for c in vs_best])
        rows = [_stats_row(c, h) for c, h in zip(vs_best, holm)]
        if rows:
            blocks.append(_para("Each configuration against the best:"))
            blocks.append(_table(headers, rows))
        claims = stats.paper_claims(summaries)
        if claims:
            blocks.append(_para("The paper's claims (the paper reports first > second; two-sided tests, "
                                "unadjusted p):"))
            claim_headers = [h for h in headers if h != "p (Holm)"]
            blocks.append(_table(claim_headers, [_stats_row(c, None)[:7] + _stats_row(c, None)[8:] for c in claims]))
        else:
            blocks.append(_para("The paper's claims cannot be tested here: the pairs of configurations they "
                                "compare did not both run."))
    return blocks


def _stats_row(c: stats.PairedComparison, holm) -> list:
    return [c.label, c.a, c.b, c.n_pairs, _fmt_num(c.mean_diff, 3, signed=True),
            _fmt_num(c.statistic, 1), _fmt_p(c.p_value), _fmt_p(holm) if holm is not None else "—",
            _fmt_num(c.effect_r, 2, signed=True), c.reason or ""]


def _figure_blocks(runs: list[RunResults], fig_dir: Path) -> list:
    blocks = [_heading(2, "Figures")]
    multi = len({r.cohort for r in runs}) > 1
    label = (lambda r: f"{r.name} [{r.cohort}]") if multi else (lambda r: r.name)
    ordered = order_runs(runs)

    def attempt(make, caption):
        try:
            blocks.append(_image(make(), caption))
        except figures.FigureSkipped as exc:
            blocks.append(_para(f"*{caption}: not drawn — {exc}.*"))

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
    try:
        from islesbench import isles
    except ImportError:
        raise figures.FigureSkipped("islesbench.isles (the ISLES reader) is not installed") from None
    ranked = sorted((r for r in run.rows if _finite(r["dice"])), key=lambda r: (r["dice"], r["case"]))
    if not ranked:
        raise figures.FigureSkipped(f"{run.name} has no case with a finite Dice")
    picks = [("best", ranked[-1]), ("median", ranked[(len(ranked) - 1) // 2]), ("worst", ranked[0])]
    seen, chosen = set(), []
    for role, row in picks:
        if row["case"] not in seen:
            seen.add(row["case"])
            chosen.append((role, row))
    cases = {c.case_id: c for c in isles.discover_cohort(raw)}
    examples = []
    import nibabel as nib
    import numpy as np

    for role, row in chosen:
        if row["case"] not in cases:
            raise figures.FigureSkipped(f"case {row['case']} is not in the raw cohort {raw}")
        pred_path = run.prediction_path(row["case"], row["fold"])
        if not pred_path.exists():
            raise figures.FigureSkipped(f"the predicted mask {pred_path} is missing")
        case = isles.load_case(cases[row["case"]], modalities=("CT_CBF", "CT_Tmax"))
        pred = np.asarray(nib.load(str(pred_path)).dataobj) > 0.5
        if pred.shape != case.mask.shape:
            raise figures.FigureSkipped(f"{pred_path} has shape {pred.shape}, the raw case {case.mask.shape}")
        examples.append(dict(role=role, case=row["case"], dice=row["dice"], cbf=case.volumes["CT_CBF"],
                             tmax=case.volumes["CT_Tmax"], reference=case.mask, prediction=pred,
                             spacing=tuple(case.spacing)))
    return examples


def _benchmark_blocks(record: dict | None, runs_dir: Path) -> list:
    if not record:
        return []
    blocks = [_heading(2, "Benchmark cells")]
    info = [f"profile `{record.get('profile', '?')}`", f"data `{record.get('data', '?')}`"]
    if record.get("wall_seconds") is not None:
        info.append(f"total wall time {_fmt_seconds(record['wall_seconds'])}")
    if record.get("finished"):
        info.append(f"finished {record['finished']}")
    blocks.append(_para("; ".join(info) + "."))
    cells = record.get("cells", [])
    rows = [[c.get("name", "?"), c.get("status", "?"), _fmt_seconds(c.get("seconds")),
             c.get("folds_trained", ""), c.get("note") or c.get("reason") or ""] for c in cells]
    if rows:
        blocks.append(_table(["Cell", "Status", "Wall time", "Folds run now", "Note"], rows))
    missing = [c for c in cells if c.get("status") != "done"]
    if missing:
        blocks.append(_heading(3, "Not run"))
        for c in missing:
            blocks.append(_para(f"**{c.get('name', '?')}** ({c.get('status', '?')}): {c.get('reason') or 'no reason recorded'}"))
            if c.get("command"):
                blocks.append(_code(c["command"]))
    return blocks


def _fmt_seconds(s) -> str:
    if s is None or not _finite(s):
        return ""
    s = float(s)
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def write_results_csv(runs: list[RunResults], path) -> Path:
    """One row per configuration × fold × case with every per-case metric (`inf` written as inf)."""
    from islesbench.atomic import atomic_path

    header = ["configuration", "cohort", "fold", "case", *METRIC_COLUMNS]
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for run in order_runs(runs):
                for r in sorted(run.rows, key=lambda r: (r["fold"], r["case"])):
                    writer.writerow([run.name, run.cohort, r["fold"], r["case"],
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
                              "fold_*/validation/metrics.csv) and no benchmark.json")
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir = out_dir / FIGURE_DIR
    fig_dir.mkdir(exist_ok=True)

    title = "islesbench comparison report"
    cohorts = sorted({r.cohort for r in runs})
    blocks = [_heading(1, title),
              _para(f"Generated {_dt.datetime.now().isoformat(timespec='seconds')} from `{runs_dir}`. "
                    f"Cohort(s): {', '.join(cohorts) or 'none'}."),
              _para("The paper's numbers (Abulnaga & Rubin 2018) come from 5-fold cross-validation on the real "
                    "ISLES 2018 training cases; rows from any other cohort (e.g. synthetic) are not comparable "
                    "with them, whatever their value.")]
    rows = comparison_rows(runs)
    if rows:
        blocks += [_heading(2, "Comparison"), _comparison_table(rows, out_dir),
                   _para(f"Mean ± standard deviation (ddof = {STD_DDOF}, as `islesbench.metrics`) over cases pooled across folds. HD, HD95 and "
                         "ASSD are averaged over the cases where they are finite; '(k inf)' counts the cases where "
                         "exactly one of prediction and reference is empty (distance infinite). ASSD is the ISLES "
                         "2015/16 mean of the two directed average surface distances (the pooled medpy ≥ 0.5 "
                         "variant is in results.csv as `assd_pooled`). AVD is the absolute volume difference in mL. "
                         "Each configuration links to the config.json that produced it.")]
        ensembles = [r for r in runs if r.is_ensemble]
        for run in ensembles:
            members = ensemble_members(run.config)
            if members:
                blocks.append(_para(f"`{run.name}` averages the validation probability maps of: "
                                    + ", ".join(f"`{m}`" for m in members) + "."))
        if ensembles:
            blocks.append(_para("The ensemble's members are chosen by their cross-validated mean Dice on the same "
                                "cases it is scored on, so its row is slightly optimistic."))
        per_fold = _per_fold_table(runs)
        if per_fold:
            blocks += [_heading(3, "Mean Dice per fold"), per_fold]
        unfinished = [f"{r.name} fold {', '.join(map(str, r.unfinished_folds))}" for r in runs if r.unfinished_folds]
        if unfinished:
            blocks.append(_para("Unfinished folds (metrics present, no DONE marker): " + "; ".join(unfinished) + "."))
        blocks += _stats_blocks(runs)
        blocks += _figure_blocks(runs, fig_dir)
    else:
        blocks.append(_para("No configuration has validation results yet."))
    blocks += _benchmark_blocks(record, runs_dir)
    if notes:
        blocks += [_heading(2, "Run folders without results")] + [_para(n) for n in notes]
    blocks.append(_para(f"Per-case numbers of every configuration and fold: [{RESULTS_CSV}]({RESULTS_CSV})."))

    from islesbench.atomic import write_text_atomic

    paths = {"results_csv": write_results_csv(runs, out_dir / RESULTS_CSV)}
    paths["report_md"] = out_dir / REPORT_MD
    write_text_atomic(paths["report_md"], render_markdown(blocks, out_dir))
    paths["report_html"] = out_dir / REPORT_HTML
    write_text_atomic(paths["report_html"], render_html(blocks, title))
    paths["figures"] = sorted(b[1] for b in blocks if b[0] == "img")
    return paths


# ---------------------------------------------------------------------------------------------------
# Command


def configure_parser(parser) -> None:
    """Arguments of `islesbench report`."""
    parser.add_argument("runs_dir", metavar="RUNS_DIR", help="runs folder written by `islesbench run`/`benchmark`")
    parser.add_argument("--out", default=None, help="output folder (default: RUNS_DIR/report)")


def run_command(args) -> int:
    """Build the report and print where it went."""
    out = Path(args.out) if args.out else Path(args.runs_dir) / "report"
    paths = build_report(args.runs_dir, out)
    print(f"wrote {paths['report_md']}, {paths['report_html']}, {paths['results_csv']} "
          f"and {len(paths['figures'])} figure(s)")
    return 0


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _nan_to(x: float, default: float) -> float:
    return x if _finite(x) else default


def _to_float(x) -> float:
    if x is None or x == "":
        return float("nan")
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")
