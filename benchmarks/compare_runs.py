"""Are two runs folders' per-case metrics identical? `python benchmarks/compare_runs.py RUNS_A RUNS_B`

Compares every `<config>/fold_<k>/validation/metrics.csv` of RUNS_A with the same file in RUNS_B, row by
row and column by column, as the text the files hold (so "identical" means bit-identical values), and
prints the runs compared, the count of identical rows and every differing value. Exit status 1 when a
row differs or a file is missing. Used to show that a refactoring changed no number (the README's main
command at two commits on the same machine).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def compare(a: Path, b: Path) -> tuple[list, int, int, list]:
    """(run names, rows compared, rows identical, [(run, case, column, value in a, value in b)])."""
    files = sorted(a.glob("*/fold_*/validation/metrics.csv"))
    total = same = 0
    differences = []
    for f in files:
        run = f.relative_to(a).parts[0]
        other = b / f.relative_to(a)
        rows_a, rows_b = read_rows(f), read_rows(other) if other.is_file() else []
        if len(rows_a) != len(rows_b):
            differences.append((run, str(f.relative_to(a)), "rows", len(rows_a), len(rows_b)))
            continue
        for x, y in zip(rows_a, rows_b):
            total += 1
            same += x == y
            differences += [(run, x.get("case"), k, x[k], y.get(k)) for k in x if x[k] != y.get(k)]
    return sorted({f.relative_to(a).parts[0] for f in files}), total, same, differences


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    runs, total, same, differences = compare(Path(argv[0]), Path(argv[1]))
    print(f"runs compared: {', '.join(runs) or 'none'}")
    print(f"per-case rows: {total}; identical in every column: {same}")
    for d in differences:
        print("differs:", *d)
    return 1 if differences or not total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
