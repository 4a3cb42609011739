"""`islesbench report` on fake-but-valid run folders: every file, the numbers, links, figures, not-run cells."""

import argparse
import csv
import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import CASES, COHORT, DICE, ENSEMBLE_DICE, metric_row, write_fake_run

from islesbench.atomic import write_json_atomic
from islesbench.errors import IslesbenchError
from islesbench.reports import figures, report
from islesbench.reports.grid import benchmark_record_path
from islesbench.reports.report import build_report


def _table_rows(markdown: str, first_header: str) -> dict:
    """{first cell text: [cells]} of the Markdown table whose header starts with `first_header`."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        key = re.sub(r"^\[(.*?)\]\(.*\)$", r"\1", cells[0])
        rows[key] = cells
    return rows


def _mean_std(values, decimals):
    v = np.asarray(values, float)
    return f"{v.mean():.{decimals}f} ± {v.std(ddof=0):.{decimals}f}"


def test_every_file_is_written(built_report):
    _, out = built_report
    for name in ("report.md", "report.html", "results.csv"):
        assert (out / name).stat().st_size > 0
    names = {p.name for p in (out / "figures").iterdir()}
    assert names == {"dice_box.png", "learning_curves.png", "dice_vs_volume.png", "example_slices.png"}
    for p in (out / "figures").iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    for name in names:
        assert f"(figures/{name})" in md


def test_comparison_table_numbers_equal_hand_computation(built_report):
    fake_runs, out = built_report
    md = (out / "report.md").read_text()
    table = _table_rows(md, "Configuration")
    header = [h.strip() for h in next(line for line in md.splitlines()
                                      if line.startswith("| Configuration |")).strip("|").split(" | ")]
    col = {h: i for i, h in enumerate(header)}
    assert set(table) == set(DICE) | {"ensemble-top2"}

    row = table["pspnet-imagenet-focal"]
    dice = DICE["pspnet-imagenet-focal"]
    rows = [metric_row(c, d, i) for i, (c, d) in enumerate(zip(CASES, dice))]
    assert row[col["Cohort"]] == COHORT
    assert row[col["Folds"]] == "2" and row[col["Cases"]] == "10"
    assert row[col["Dice"]] == _mean_std(dice, 3)
    assert row[col["Precision"]] == _mean_std([r["precision"] for r in rows], 3)
    assert row[col["HD (mm)"]] == _mean_std([r["hd"] for r in rows], 1)
    assert row[col["AVD (mL)"]] == _mean_std([r["avd_ml"] for r in rows], 2)
    assert row[col["Cases with inf distance"]] == "0"
    assert "0.54 ± 0.09" in row[-1]

    # V-Net has one empty prediction: distances averaged over the 9 finite cases, "(1 inf)" beside.
    vrow = table["vnet-focal"]
    vrows = [metric_row(c, d, i) for i, (c, d) in enumerate(zip(CASES, DICE["vnet-focal"]))]
    finite_hd = [r["hd"] for r in vrows if math.isfinite(r["hd"])]
    assert len(finite_hd) == 9
    assert vrow[col["HD (mm)"]] == _mean_std(finite_hd, 1) + " (1 inf)"
    assert vrow[col["Dice"]] == _mean_std(DICE["vnet-focal"], 3)
    assert vrow[col["Cases with inf distance"]] == "1"

    assert "0.57" in table["ensemble-top2"][-1]
    assert "7 points below pretrained" in table["pspnet-scratch-focal"][-1]
    assert table["threshold"][-1] == "—"
    # Ordered by mean Dice, best first.
    order = [k for k in table]
    means = {"ensemble-top2": np.mean(ENSEMBLE_DICE), **{k: np.mean(v) for k, v in DICE.items()}}
    assert order == sorted(means, key=lambda k: -means[k])


def test_rows_link_to_their_config_json(built_report):
    fake_runs, out = built_report
    md = (out / "report.md").read_text()
    links = re.findall(r"\[([a-z0-9-]+)\]\(([^)]+config\.json)\)", md)
    assert len(links) == len(DICE) + 1
    for name, href in links:
        target = (out / href).resolve()
        assert target == (fake_runs / name / "config.json").resolve() and target.exists()
    html = (out / "report.html").read_text()
    assert 'href="../runs/pspnet-imagenet-focal/config.json"' in html


def test_html_is_self_contained(built_report):
    fake_runs, out = built_report
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 4
    assert not re.search(r'src="(?!data:)', html)  # no image or script fetched from elsewhere
    assert "<table>" in html and "pspnet-imagenet-focal" in html


def test_results_csv_has_one_row_per_configuration_fold_case(built_report):
    fake_runs, out = built_report
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == (len(DICE) + 1) * len(CASES)
    keys = {(r["configuration"], r["fold"], r["case"]) for r in rows}
    assert len(keys) == len(rows)
    vnet = {r["case"]: r for r in rows if r["configuration"] == "vnet-focal"}
    assert vnet["case_3"]["hd"] == "inf" and float(vnet["case_3"]["dice"]) == 0.0
    assert float(vnet["case_1"]["dice"]) == DICE["vnet-focal"][0]
    assert vnet["case_7"]["fold"] == "1" and vnet["case_7"]["cohort"] == COHORT


def test_statistics_section_matches_scipy(built_report):
    from scipy.stats import wilcoxon

    _, out = built_report
    md = (out / "report.md").read_text()
    assert "Best configuration by mean Dice: **ensemble-top2**" in md
    versus_best = _table_rows(md, "Comparison")  # the first such table: each configuration vs the best
    row = versus_best["vnet-focal vs best"]
    assert row[1:3] == ["vnet-focal", "ensemble-top2"]
    assert row[6] == f"{wilcoxon(DICE['vnet-focal'], ENSEMBLE_DICE).pvalue:.3f}"
    assert len(versus_best) == len(DICE)
    line = next(x for x in md.splitlines() if x.startswith("| pretrained > scratch (focal) |"))
    cells = [c.strip() for c in line.strip("|").split(" | ")]
    a, b = DICE["pspnet-imagenet-focal"], DICE["pspnet-scratch-focal"]
    expected = wilcoxon(a, b)
    assert cells[3] == "10"
    assert cells[4] == f"{np.mean(np.subtract(a, b)):+.3f}"
    assert cells[6] == f"{expected.pvalue:.3f}"


def test_not_run_cells_are_listed_with_reason_and_command(fake_runs, tmp_path):
    command = "islesbench run --arch pspnet --pretrained imagenet --loss ce --data /d --profile quick --out runs"
    write_json_atomic(benchmark_record_path(fake_runs), {
        "profile": "quick", "data": "/d", "wall_seconds": 754.0, "finished": "2026-01-01T00:00:00",
        "cells": [
            {"name": "pspnet-imagenet-focal", "status": "done", "seconds": 300.0, "folds_trained": 2},
            {"name": "pspnet-imagenet-ce", "status": "not run", "seconds": 0.1,
             "reason": "ImageNet weights are not available offline", "command": command},
        ],
    })
    build_report(fake_runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "**pspnet-imagenet-ce** (not run): ImageNet weights are not available offline" in md
    assert command in md
    assert "12.6 min" in md  # total wall time


def test_example_panel_is_skipped_with_a_note_without_raw_data(tmp_path):
    runs = tmp_path / "runs"
    write_fake_run(runs, "unet-focal", DICE["unet-focal"], raw_data=tmp_path / "gone")
    write_fake_run(runs, "threshold", DICE["threshold"], raw_data=tmp_path / "gone")
    paths = build_report(runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "not drawn — the raw cohort" in md and "is not available on this machine" in md
    assert {p.name for p in paths["figures"]} == {"dice_box.png", "learning_curves.png", "dice_vs_volume.png"}
    assert "The paper's claims cannot be tested here" in md


def _parse(argv):
    parser = argparse.ArgumentParser()
    report.configure_parser(parser)
    return parser.parse_args(argv)


def test_report_command_and_empty_folder(fake_runs, tmp_path):
    assert report.run_command(_parse([str(fake_runs), "--out", str(tmp_path / "r")])) == 0
    assert (tmp_path / "r" / "report.html").exists()
    assert report.run_command(_parse([str(fake_runs)])) == 0  # default: RUNS_DIR/report
    assert (fake_runs / "report" / "report.md").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(IslesbenchError, match="no run with validation results"):
        build_report(tmp_path / "empty", tmp_path / "r2")


def test_report_is_a_cli_command():
    from islesbench.cli import COMMANDS

    assert COMMANDS["report"][0] == "islesbench.reports.report"
    assert COMMANDS["benchmark"][0] == "islesbench.reports.benchmark"


def test_unfinished_fold_is_flagged(tmp_path):
    runs = tmp_path / "runs"
    run = write_fake_run(runs, "unet-focal", DICE["unet-focal"])
    (run / "fold_1" / "DONE").unlink()
    build_report(runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Unfinished folds" in md and "unet-focal fold 1" in md


def test_largest_lesion_slice():
    ref = np.zeros((4, 4, 5), bool)
    ref[:2, :2, 1] = True
    ref[:3, :3, 3] = True
    assert figures.largest_lesion_slice(ref) == 3
    pred = np.zeros_like(ref)
    pred[0, 0, 4] = True
    assert figures.largest_lesion_slice(np.zeros_like(ref), pred) == 4
    assert figures.largest_lesion_slice(np.zeros_like(ref), np.zeros_like(ref)) == 2


def test_learning_curves_reads_csvlogger_history(tmp_path):
    hist = tmp_path / "history.csv"
    hist.write_text("epoch,dice,loss,val_dice,val_loss\n0,0.1,1.0,0.05,1.2\n1,0.3,0.7,0.2,0.9\n")
    h = figures.read_history(hist)
    assert h["val_dice"] == [0.05, 0.2] and figures._dice_column(h, "") == "dice"
    assert figures._dice_column(h, "val_") == "val_dice"
    out = figures.learning_curves([("unet-focal", {0: hist})], tmp_path / "lc.png")
    assert Path(out).exists()
    with pytest.raises(figures.FigureSkipped):
        figures.learning_curves([], tmp_path / "none.png")
