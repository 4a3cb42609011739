"""Imported (external) rows in the report: shown like any row, never in the paper's claims, and tested
against every other row as cross-framework comparisons whose configs cannot be diffed."""

from __future__ import annotations

import numpy as np
from fake_runs import (CASES, DICE, ENSEMBLE_DICE, PATIENTS, build_fake_runs, markdown_table_rows,
                       write_fake_ensemble, write_fake_external)

from islesbench.reports.report import build_report

EXTERNAL_DICE = [0.85, 0.74, 0.71, 0.66, 0.93, 0.70, 0.88, 0.69, 0.83, 0.75]


def patient_values(values) -> list:
    by_patient = {}
    for case, v in zip(CASES, values):
        by_patient.setdefault(PATIENTS[case], []).append(v)
    return [float(np.mean(v)) for _, v in sorted(by_patient.items())]


def test_an_external_row_is_shown_and_tested_against_every_other_row(tmp_path):
    from scipy.stats import wilcoxon

    runs = build_fake_runs(tmp_path)
    write_fake_external(runs, "nnunet-2d", EXTERNAL_DICE)
    write_fake_external(runs, "elsewhere-other-folds", EXTERNAL_DICE, splits_fingerprint="0123456789abcdef")
    build_report(runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()

    comparison = markdown_table_rows(md, "Configuration", "## Comparison")
    assert "nnunet-2d" in comparison and "external predictions (imported)" in " ".join(comparison["nnunet-2d"])
    assert "nnunet-2d" in markdown_table_rows(md, "Configuration", "### Mean Dice per fold (seed 0, over cases)")
    claims = [line for line in md.splitlines() if "controlled: differs only in" in line or "NOT a test" in line]
    assert claims and not any("nnunet-2d" in line or "elsewhere" in line for line in claims)

    cross = markdown_table_rows(md, "Comparison", "#### Cross-framework comparisons")
    others = set(DICE) | {"ensemble-top2", "elsewhere-other-folds"}
    assert {k for k in cross if k.startswith("nnunet-2d vs ")} == {f"nnunet-2d vs {o}" for o in others}
    row = cross["nnunet-2d vs unet-focal"]
    a, b = patient_values(EXTERNAL_DICE), patient_values(DICE["unet-focal"])
    assert row[3] == "9" and row[4].startswith(f"{np.mean(np.subtract(a, b)):+.3f} [")
    assert row[6] == f"{wilcoxon(a, b).pvalue:.3f}"
    assert row[9] == "cross-framework comparison on the same folds; configs cannot be diffed"
    assert row[10].startswith("cannot be diffed: external predictions (nnU-Net 2d (fake))")
    ens = cross["nnunet-2d vs ensemble-top2"]
    assert ens[6] == f"{wilcoxon(a, patient_values(ENSEMBLE_DICE)).pvalue:.3f}"
    other = cross["elsewhere-other-folds vs unet-focal"]
    assert other[9].startswith("NOT comparable: predicted on other folds") and other[6] == "other folds"


def test_a_row_whose_folds_are_unknown_is_not_paired_as_same_folds(tmp_path):
    """An ensemble written before ensembles recorded their members' splits fingerprint: its folds are
    unknown, which is said as such, not as "other folds" and not as "same folds"."""
    runs = build_fake_runs(tmp_path)
    write_fake_ensemble(runs, ["pspnet-imagenet-focal", "unet-focal"], name="ensemble-old", splits_fingerprint=None)
    write_fake_external(runs, "nnunet-2d", EXTERNAL_DICE)
    build_report(runs, tmp_path / "report")
    cross = markdown_table_rows((tmp_path / "report" / "report.md").read_text(), "Comparison",
                                "#### Cross-framework comparisons")
    old = cross["nnunet-2d vs ensemble-old"]
    assert old[9] == "NOT comparable: ensemble-old's folds are unknown (its config.json records no splits fingerprint)"
    assert old[6] == "folds unknown"  # shown, not tested
    assert cross["nnunet-2d vs ensemble-top2"][9].startswith("cross-framework comparison on the same folds")



def test_an_imported_row_whose_folds_are_unknown_is_named_as_such(tmp_path):
    """The other side: an imported row without a splits fingerprint is the one whose folds are unknown."""
    runs = build_fake_runs(tmp_path)
    write_fake_external(runs, "nnunet-old", EXTERNAL_DICE, splits_fingerprint=None)
    build_report(runs, tmp_path / "report")
    cross = markdown_table_rows((tmp_path / "report" / "report.md").read_text(), "Comparison",
                                "#### Cross-framework comparisons")
    row = cross["nnunet-old vs unet-focal"]
    assert row[9] == "NOT comparable: nnunet-old's folds are unknown (its config.json records no splits fingerprint)"
    assert row[6] == "folds unknown"
