"""benchmarks/compare_runs.py: two runs folders' per-case metrics, identical or not."""

import csv

from benchmark_scripts import load
from fake_runs import DICE, write_fake_run

compare_runs = load("compare_runs")


def test_identical_folders_pass_and_one_changed_value_is_named(tmp_path):
    for side in ("a", "b"):
        write_fake_run(tmp_path / side, "unet-focal", DICE["unet-focal"])
    assert compare_runs.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    metrics = next((tmp_path / "b").glob("unet-focal/fold_1/validation/metrics.csv"))
    rows = list(csv.DictReader(open(metrics)))
    rows[0]["dice"] = str(float(rows[0]["dice"]) + 1e-12)
    with open(metrics, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    runs, total, same, differences = compare_runs.compare(tmp_path / "a", tmp_path / "b")
    assert runs == ["unet-focal"] and same == total - 1
    assert [(d[0], d[1], d[2]) for d in differences] == [("unet-focal", rows[0]["case"], "dice")]
    assert compare_runs.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
