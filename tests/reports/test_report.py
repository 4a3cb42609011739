"""`islesbench report` on fake-but-valid run folders: every file, the numbers, links, figures, not-run cells."""

import argparse
import csv
import math
import re
from pathlib import Path

import numpy as np
import pytest
from fake_runs import (CASES, COHORT, DICE, ENSEMBLE_DICE, fake_training_facts, markdown_table_rows, metric_row,
                       write_fake_run)

from islesbench.atomic import write_json_atomic
from islesbench.commands import report as report_command
from islesbench.config import apply_overrides
from islesbench.errors import IslesbenchError
from islesbench.grid.grid_file import benchmark_record_path
from islesbench.reports import figures
from islesbench.reports.report import build_report
from islesbench.storage import history


def _table_rows(markdown: str, first_header: str) -> dict:
    return markdown_table_rows(markdown, first_header)


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


def _patient_values(values):
    """Per patient (case_1 and case_2 are one patient): the mean of its cases' finite values, by hand."""
    by_case = dict(zip(CASES, values))
    out = {"patient_A": [by_case["case_1"], by_case["case_2"]]}
    out.update({f"patient_{c}": [by_case[c]] for c in CASES[2:]})
    means = []
    for _, vals in sorted(out.items()):  # the report's order of patients
        finite = [v for v in vals if math.isfinite(v)]
        if finite:
            means.append(sum(finite) / len(finite))
    return means


def _mean_ci(values, decimals):
    from scipy.stats import bootstrap

    v = np.asarray(values, float)
    ci = bootstrap((v,), np.mean, n_resamples=4000, method="percentile",
                   random_state=np.random.default_rng(0)).confidence_interval
    return f"{v.mean():.{decimals}f} [{ci.low:.{decimals}f}, {ci.high:.{decimals}f}]"


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
    assert row[col["Folds"]] == "2" and row[col["Patients (cases)"]] == "9 (10)"
    assert row[col["Dice [95% CI]"]] == _mean_ci(_patient_values(dice), 3)
    assert row[col["SD over patients"]] == f"{np.std(_patient_values(dice), ddof=1):.3f}"
    assert row[col["SD over seeds"]] == "1 seed"
    assert row[col["Precision"]] == _mean_ci(_patient_values([r["precision"] for r in rows]), 3)
    assert row[col["HD (mm)"]] == _mean_ci(_patient_values([r["hd"] for r in rows]), 1)
    assert row[col["AVD (mL)"]] == _mean_ci(_patient_values([r["avd_ml"] for r in rows]), 2)
    assert row[col["Infinite distances (results)"]] == "0 of 10"
    assert "0.54 ± 0.09" in row[-1]

    # V-Net has one empty prediction: distances averaged over the finite patients, n and the count beside.
    vrow = table["vnet-focal"]
    vrows = [metric_row(c, d, i) for i, (c, d) in enumerate(zip(CASES, DICE["vnet-focal"]))]
    assert len(_patient_values([r["hd"] for r in vrows])) == 8
    assert vrow[col["HD (mm)"]] == _mean_ci(_patient_values([r["hd"] for r in vrows]), 1) + " (n 8/9)"
    assert vrow[col["Dice [95% CI]"]] == _mean_ci(_patient_values(DICE["vnet-focal"]), 3)
    assert vrow[col["Infinite distances (results)"]] == "1 of 10"

    assert "0.57" in table["ensemble-top2"][-1]
    assert "optimistic" in table["ensemble-top2"][col["Selection"]]  # no per-fold selection recorded
    assert "7 points below pretrained" in table["pspnet-scratch-focal"][-1]
    assert table["threshold"][-1] == "—"
    # Ordered by mean patient Dice, best first.
    order = [k for k in table]
    means = {"ensemble-top2": np.mean(_patient_values(ENSEMBLE_DICE)),
             **{k: np.mean(_patient_values(v)) for k, v in DICE.items()}}
    assert order == sorted(means, key=lambda k: -means[k])


def test_the_lesion_f1_columns_say_which_rule_they_follow(built_report):
    """Three lesion F1s, each named by its rule: ISLES'22 (any overlap), ISLES'24 at IoU 0.5 (2024) and 0.2
    (the organisers' script since 2025-12-16)."""
    _, out = built_report
    md = (out / "report.md").read_text()
    header = [h.strip() for h in next(line for line in md.splitlines()
                                      if line.startswith("| Configuration |")).strip("|").split(" | ")]
    col = {h: i for i, h in enumerate(header)}
    row = _table_rows(md, "Configuration")["unet-focal"]
    rows = [metric_row(c, d, i) for i, (c, d) in enumerate(zip(CASES, DICE["unet-focal"]))]
    for column, metric in (("Lesion F1 (ISLES'22)", "lesion_f1"),
                           ("Lesion F1 IoU≥0.5 (ISLES'24, 2024)", "lesion_f1_iou50"),
                           ("Lesion F1 IoU≥0.2 (ISLES'24 since 2025-12)", "lesion_f1_iou20")):
        assert row[col[column]] == _mean_ci(_patient_values([r[metric] for r in rows]), 3), column
    note = next(line for line in md.splitlines() if line.startswith("Lesion F1 columns:"))
    assert "`lesion_f1`, the ISLES'22 rule" in note and "IoU >= 0.5" in note and "34c6637" in note
    assert "IoU >= 0.2" in note and "94b3486" in note and "panoptica" in note and "1.0.1" in note


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


def test_statistics_section_matches_scipy_on_patients(built_report):
    from scipy.stats import wilcoxon

    _, out = built_report
    md = (out / "report.md").read_text()
    assert "9 patients, 10 cases" in md
    assert "against the best by mean patient Dice, **ensemble-top2**" in md
    versus_best = _table_rows(md, "Comparison")  # the first such table: each configuration vs the best
    row = versus_best["vnet-focal vs best"]
    assert row[1:4] == ["vnet-focal", "ensemble-top2", "9"]
    v, e = _patient_values(DICE["vnet-focal"]), _patient_values(ENSEMBLE_DICE)
    assert row[6] == f"{wilcoxon(v, e).pvalue:.3f}"
    assert row[4].startswith(f"{np.mean(np.subtract(v, e)):+.3f} [")
    assert len(versus_best) == len(DICE)
    line = next(x for x in md.splitlines() if x.startswith("| focal > CE (pspnet-imagenet) |"))
    cells = [c.strip() for c in line.strip("|").split(" | ")]
    a, b = _patient_values(DICE["pspnet-imagenet-focal"]), _patient_values(DICE["pspnet-imagenet-ce"])
    assert cells[3] == "9"
    assert cells[4].startswith(f"{np.mean(np.subtract(a, b)):+.3f} [")
    assert cells[6] == f"{wilcoxon(a, b).pvalue:.3f}"
    assert cells[9] == "controlled: differs only in loss" and cells[10] == "loss.name: focal → ce"


def test_a_pair_that_differs_in_more_than_the_factor_is_not_called_a_test(tmp_path):
    from islesbench.config import profile_config

    runs = tmp_path / "runs"
    # The quick profile's own PSPNets: ImageNet weights need the full width, so the pair also differs in
    # width, input size and learning rate; U-Net focal/CE differ in the loss alone.
    for arch, pretrained, loss, name in (("pspnet", "imagenet", "focal", "pspnet-imagenet-focal"),
                                         ("pspnet", None, "focal", "pspnet-scratch-focal"),
                                         ("unet", None, "focal", "unet-focal"), ("unet", None, "ce", "unet-focal")):
        cfg = apply_overrides(profile_config("quick", arch, pretrained), {"loss": {"name": loss}})
        write_fake_run(runs, cfg.name, DICE[name], config=cfg)
    build_report(runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| pretrained (imagenet) > scratch, PSPNet focal |"))
    cells = [c.strip() for c in line.strip("|").split(" | ")]
    assert cells[9].startswith("NOT a test of the claim: also differs in ")
    for field in ("data.input_size", "model.encoder_width", "optimizer.learning_rate"):
        assert field in cells[9] and field in cells[10]
    assert cells[6] == "not a test" and cells[7] == "—"
    unet = next(x for x in md.splitlines() if x.startswith("| focal > CE (unet) |"))
    assert "controlled: differs only in loss" in unet


def test_repeats_over_seeds_form_one_row_with_their_spread(tmp_path):
    from islesbench.config import profile_config

    runs = tmp_path / "runs"
    shifts = (0.0, 0.02, -0.04)
    for seed, shift in enumerate(shifts):
        cfg = apply_overrides(profile_config("quick", "unet"), {"train": {"seed": seed}})
        write_fake_run(runs, cfg.name, [d + shift for d in DICE["unet-focal"]], config=cfg)
    build_report(runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    table = _table_rows(md, "Configuration")
    assert list(table) == ["unet-focal"]
    header = [h.strip() for h in next(line for line in md.splitlines()
                                      if line.startswith("| Configuration |")).strip("|").split(" | ")]
    row = dict(zip(header, table["unet-focal"]))
    seed_means = [np.mean(_patient_values_no_pairs([d + s for d in DICE["unet-focal"]])) for s in shifts]
    assert row["Seeds"] == "3"
    assert row["SD over seeds"].startswith(f"{np.std(seed_means, ddof=1):.3f} (range 0.060, 3 seeds)")


def _patient_values_no_pairs(values):
    return list(values)  # without patients.json every case is its own patient


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
    assert "not testable here: unet-ce has no results" in md


def _parse(argv):
    parser = argparse.ArgumentParser()
    report_command.configure_parser(parser)
    return parser.parse_args(argv)


def test_report_command_and_empty_folder(fake_runs, tmp_path):
    assert report_command.run_command(_parse([str(fake_runs), "--out", str(tmp_path / "r")])) == 0
    assert (tmp_path / "r" / "report.html").exists()
    assert report_command.run_command(_parse([str(fake_runs)])) == 0  # default: RUNS_DIR/report
    assert (fake_runs / "report" / "report.md").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(IslesbenchError, match="no run with validation results"):
        build_report(tmp_path / "empty", tmp_path / "r2")


def test_report_and_benchmark_run_from_the_command_line(fake_runs, tmp_path, capsys):
    from islesbench.cli import main

    assert main(["report", str(fake_runs), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.md").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main(["benchmark", "--help"])
    assert exit_info.value.code == 0 and "--seeds" in capsys.readouterr().out


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
    assert h["val_dice"] == [0.05, 0.2] and history.dice_column(h) == "dice"
    assert history.dice_column(h, validation=True) == "val_dice"
    out = figures.learning_curves([("unet-focal", {0: hist})], tmp_path / "lc.png")
    assert Path(out).exists()
    with pytest.raises(figures.FigureSkipped):
        figures.learning_curves([], tmp_path / "none.png")


def test_nested_ensemble_shows_its_members_per_fold_and_faces_the_nested_best_single(fake_runs, tmp_path):
    config_path = fake_runs / "ensemble-top2" / "config.json"
    import json

    config = json.loads(config_path.read_text())
    per_fold = {"0": {"members": ["unet-focal", "pspnet-imagenet-focal"],
                      "ranking": [["unet-focal", 0.72], ["pspnet-imagenet-focal", 0.70], ["vnet-focal", 0.4]]},
                "1": {"members": ["pspnet-imagenet-focal", "unet-focal"],
                      "ranking": [["pspnet-imagenet-focal", 0.75], ["unet-focal", 0.71], ["vnet-focal", 0.3]]}}
    config["selection"] = {"method": "nested", "description": "top 2 on the other folds", "per_fold": per_fold}
    write_json_atomic(config_path, config)
    build_report(fake_runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| 0 | unet-focal, pspnet-imagenet-focal | unet-focal 0.720; pspnet-imagenet-focal 0.700" in md
    line = next(x for x in md.splitlines() if x.startswith("| ensemble > best single model"))
    cells = [c.strip() for c in line.strip("|").split(" | ")]
    # the best single model of fold 0 is U-Net (ranked first on fold 1), of fold 1 PSPNet
    by_case = dict(zip(CASES, [u if i < 5 else p for i, (u, p) in enumerate(zip(DICE["unet-focal"],
                                                                              DICE["pspnet-imagenet-focal"]))]))
    single = _patient_values([by_case[c] for c in CASES])
    diff = np.mean(np.subtract(_patient_values(ENSEMBLE_DICE), single))
    assert cells[3] == "9" and cells[4].startswith(f"{diff:+.3f} [")
    table = _table_rows(md, "Configuration")
    assert "nested" in " ".join(table["ensemble-top2"])


def test_a_row_tuned_on_its_scored_folds_is_flagged(tmp_path):
    from islesbench.config import profile_config

    runs = tmp_path / "runs"
    write_fake_run(runs, "unet-focal", DICE["unet-focal"], config=profile_config("quick", "unet"))
    tuned = apply_overrides(profile_config("quick", "unet"), {"name_override": "unet-focal-tuned-nonnested"})
    run = write_fake_run(runs, "unet-focal", DICE["pspnet-imagenet-focal"], config=tuned)
    import json

    config = json.loads((run / "config.json").read_text())
    write_json_atomic(run / "config.json", {**config, "tuning": {"source": "best_hparams.json", "nested": False}})
    build_report(runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    row = _table_rows(md, "Configuration")["unet-focal-tuned-nonnested"]
    assert "tuned on the folds it is scored on (non-nested): optimistic" in row
    assert "unet-focal-tuned-nonnested" not in [c for c in md.splitlines() if c.startswith("| focal > CE")]


def test_an_encoder_pretrained_on_unknown_data_is_flagged_in_the_table_and_the_claim(tmp_path):
    """`run --pretrained FILE` of a file no record is tied to (a renamed copy, say): allowed, but "unknown" is
    flagged beside the row, and the pretrained-vs-scratch pair is no clean test."""
    from islesbench.config import profile_config

    runs = tmp_path / "runs"
    write_fake_run(runs, "pspnet-scratch-focal", DICE["pspnet-scratch-focal"], config=profile_config("paper", "pspnet"))
    unknown = {"source": "mine.keras", "per_fold": False, "method": None,
               "folds": {str(k): {"file": "mine.keras", "record": "unknown: no pretrain.json describes it",
                                  "saw_validation_cases": None, "leak": "unknown"} for k in (0, 1)}}
    write_fake_run(runs, "pspnet-mine-focal", DICE["pspnet-imagenet-focal"],
                   config=apply_overrides(profile_config("paper", "pspnet", "mine.keras"),
                                          {"model": {"pretrained": "mine.keras"}}), extras={"pretraining": unknown})
    build_report(runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    row = _table_rows(md, "Configuration")["pspnet-mine-focal"]
    assert any("encoder pretrained on unknown data" in cell for cell in row), row
    claim = next(line for line in md.splitlines() if line.startswith("| pretrained (mine) > scratch, PSPNet focal |"))
    assert "NOT a clean test of the claim: first: encoder pretrained on unknown data" in claim, claim


def test_convention_and_anchors_are_labelled_and_isles24_rows_get_no_isles2018_number(tmp_path):
    runs = tmp_path / "runs"
    run = write_fake_run(runs, "unet-focal", DICE["unet-focal"], cohort="synthetic ISLES'24 (seed 0)")
    for fold in (0, 1):  # rows written with the challenge's own HD/ASSD
        path = run / f"fold_{fold}" / "validation" / "metrics.csv"
        lines = path.read_text().splitlines()
        path.write_text("\n".join([lines[0] + ",convention"] + [x + ",isles" for x in lines[1:]]) + "\n")
    build_report(runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    header = [h.strip() for h in next(line for line in md.splitlines()
                                      if line.startswith("| Configuration |")).strip("|").split(" | ")]
    row = dict(zip(header, _table_rows(md, "Configuration")["unet-focal"]))
    assert row["Convention"] == "isles" and row[header[-1]] == "—"  # the paper's ISLES 2018 CV number is not set beside
    assert "`isles`: ISLES 2015–2018 evaluator" in md
    assert "| 0.285 ± 0.213 | dice | winning entry" in md and "| 0.51 | dice |" not in md


def test_infinite_distances_are_counted_over_every_seed_and_penalised_in_their_own_column(tmp_path):
    from fake_runs import SHAPE, SPACING, write_predictions

    from islesbench.config import profile_config

    runs = tmp_path / "runs"
    dice_of_seed = {0: DICE["vnet-focal"], 1: [0.0 if c == "case_5" else d for c, d in zip(CASES, DICE["vnet-focal"])]}
    for seed, dice in dice_of_seed.items():  # seed 0 misses case_3's lesion, seed 1 case_3's and case_5's
        cfg = apply_overrides(profile_config("quick", "vnet"), {"train": {"seed": seed}})
        write_fake_run(runs, cfg.name, dice, config=cfg)
        write_predictions(runs, cfg.name)
    build_report(runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    header = [h.strip() for h in next(line for line in md.splitlines()
                                      if line.startswith("| Configuration |")).strip("|").split(" | ")]
    row = dict(zip(header, _table_rows(md, "Configuration")["vnet-focal"]))
    assert row["Infinite distances (results)"] == "3 of 20"  # seed 1's miss counts too
    # Plain HD: case_5 (its own patient) is finite in seed 0 only, case_3 in neither: 9 of 10 patients.
    assert row["HD (mm)"].endswith("(n 9/10)")
    diagonal = float(np.sqrt(sum((n * s) ** 2 for n, s in zip(SHAPE, SPACING))))  # 30.2 mm
    per_seed = []
    for dice in dice_of_seed.values():
        hd = [diagonal if math.isinf(r["hd"]) else r["hd"]
              for r in (metric_row(c, d, i) for i, (c, d) in enumerate(zip(CASES, dice)))]
        per_seed.append([v for _, v in sorted(zip(CASES, hd))])  # the report's order: patients sorted by name
    assert row["HD, empty penalised (mm)"] == _mean_ci(np.mean(per_seed, axis=0), 1)
    assert "diagonal of the case's field of view" in md


def test_each_claim_says_what_the_grid_could_detect_and_what_it_would_need(tmp_path):
    from islesbench.config import profile_config
    from islesbench.reports import stats

    runs = tmp_path / "runs"
    rng = np.random.default_rng(3)
    noise = {(loss, seed): rng.normal(0, 0.03, len(CASES)) for loss in ("focal", "ce") for seed in (0, 1)}
    for (loss, seed), jitter in noise.items():  # focal and CE equal but for noise: the interval spans zero
        cfg = apply_overrides(profile_config("quick", "unet"), {"loss": {"name": loss}, "train": {"seed": seed}})
        write_fake_run(runs, cfg.name, list(np.clip(np.array(DICE["unet-focal"]) + jitter, 0.01, 1)), config=cfg)
    build_report(runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    header = [h.strip() for h in next(line for line in md.splitlines()
                                      if line.startswith("| Comparison |") and "Outcome" in line).strip("|").split(" | ")]
    row = dict(zip(header, (c.strip() for c in next(line for line in md.splitlines()
                                                    if line.startswith("| focal > CE (unet) |")).strip("|").split(" | "))))
    assert row["Verdict"] == "controlled: differs only in loss"
    assert row["Outcome"] == "not shown: the interval spans zero"
    assert "does not hold" not in row["Outcome"]

    def arm(loss):  # per seed, per case (no patients.json: a case is a patient)
        return np.array([np.clip(np.array(DICE["unet-focal"]) + noise[(loss, s)], 0.01, 1) for s in (0, 1)])

    focal, ce = arm("focal"), arm("ce")
    diffs = focal.mean(axis=0) - ce.mean(axis=0)
    seed_sds = (np.std(focal.mean(axis=1), ddof=1), np.std(ce.mean(axis=1), ddof=1))
    est = stats.power_estimate(np.std(diffs, ddof=1), len(CASES), seed_sds, 2, alpha=0.05)
    assert row["Detectable at 80% power"] == f"{est.detectable:.3f} (α = 0.05)"
    assert row["Needed for 0.05 Dice"] == (f"{est.patients_needed} patients at 2 seed(s); or "
                                           + (f"{est.seeds_needed} seeds at 10 patients" if est.seeds_needed
                                              else "no number of seeds at 10 patients")
                                           + (f"; together: {est.together[0]} patients and {est.together[1]} seeds"
                                              if est.together else ""))


def test_a_claim_whose_arms_drew_other_training_batches_is_not_called_a_test(tmp_path):
    from islesbench.config import profile_config

    runs = tmp_path / "runs"
    unet, vnet = profile_config("quick", "unet"), profile_config("quick", "vnet")  # 16 slices a step each
    write_fake_run(runs, "unet-focal", DICE["unet-focal"], config=unet)
    # as with uniformly cropped slabs on whole-brain volumes: far fewer lesion slices than the 2-D model's half
    write_fake_run(runs, "vnet-focal", DICE["vnet-focal"], config=vnet,
                   facts=fake_training_facts(vnet, lesion_slice_share=0.1, lesion_voxel_share=0.002))
    build_report(runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| 2-D > 3-D: U-Net vs V-Net (focal) |"))
    cells = [c.strip() for c in line.strip("|").split(" | ")]
    assert cells[9] == "NOT a test of the claim: also differs in drawn slices with lesion, drawn lesion voxels"
    assert "drawn slices with lesion: 0.50 → 0.10" in cells[10] and cells[6] == "not a test"
