"""Write the comparison report of a runs folder: report.md, report.html (self-contained) and results.csv.

Reads only the results layout (reports/results_reader.py) and `benchmark.json`; it never trains or
predicts. The tables (reports/tables.py) put the patient first: per-configuration means over patients
with patient-level bootstrap intervals, the spread over patients and over training seeds, paired tests
on patients, and the paper's claims on matched pairs only. Figures are reports/figures.py's.
"""

from __future__ import annotations

from pathlib import Path

from islesbench.reports.report import build_report


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
