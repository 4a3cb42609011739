"""How the numbers were made (reports/cells.py, and the claims table it feeds): what trained each fold,
arms whose folds differ in it, and a report's first lines when its code was not committed."""

from __future__ import annotations

import json

from fake_runs import DICE, write_fake_run

from islesbench.atomic import write_json_atomic
from islesbench.config import apply_overrides, profile_config
from islesbench.grid.grid_file import benchmark_record_path
from islesbench.reports.report import build_report
from islesbench.storage import run_layout

COMMIT_A, COMMIT_B, COMMIT_ROOT = "a" * 40, "b" * 40, "c" * 40


def _record(commit=COMMIT_A, **changes):
    record = {"commit": commit, "tree_modified": False, "diff_sha256": None,
              "versions": {"tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.2.6"},
              "machine": {"cpu_model": "Xeon", "cpu_flags": ["avx512_bf16", "amx_bf16"], "devices": ["CPU"],
                          "replicas": 1, "threads": {"intra_op": 2, "inter_op": 2, "omp": 2}}}
    return {**record, **changes}


def _unet_runs(runs, fold_records: dict):
    """unet-focal and unet-ce (a matched loss pair), each fold's config.json given its provenance as the
    fold's own training would write it, and the runs' root config.json an unrelated later commit's."""
    for loss, name in (("focal", "unet-focal"), ("ce", "unet-ce")):
        cfg = apply_overrides(profile_config("quick", "unet"), {"loss": {"name": loss}})
        write_fake_run(runs, cfg.name, DICE["unet-focal"], config=cfg, extras={"provenance": _record(COMMIT_ROOT)})
        for fold in (0, 1):
            path = run_layout.fold_paths(runs, cfg.name, fold).config
            config = json.loads(path.read_text())
            config["provenance"] = fold_records[(cfg.name, fold)]
            write_json_atomic(path, config)


def _report(runs, tmp_path) -> str:
    build_report(runs, tmp_path / "report")
    return (tmp_path / "report" / "report.md").read_text()


def _claim_line(md: str) -> str:
    return next(x for x in md.splitlines() if x.startswith("| focal > CE (unet) |"))


def test_arms_trained_at_other_commits_are_not_a_controlled_test(tmp_path):
    runs = tmp_path / "runs"
    _unet_runs(runs, {("unet-focal", 0): _record(), ("unet-focal", 1): _record(),
                      ("unet-ce", 0): _record(), ("unet-ce", 1): _record(COMMIT_B)})
    line = _claim_line(_report(runs, tmp_path))
    assert "NOT a test of the claim: also differs in provenance (commit: aaaaaaaaaaaa vs aaaaaaaaaaaa, bbbbbbbbbbbb)" \
        in line


def test_arms_on_other_libraries_or_cpus_are_not_a_controlled_test_and_equal_ones_are(tmp_path):
    same = {(n, k): _record() for n in ("unet-focal", "unet-ce") for k in (0, 1)}
    _unet_runs(tmp_path / "same", same)
    assert "controlled: differs only in loss" in _claim_line(_report(tmp_path / "same", tmp_path / "s"))
    other = dict(same)
    other[("unet-ce", 0)] = _record(versions={"tensorflow": "2.20.0", "keras": "3.15.1", "numpy": "2.2.6"})
    other[("unet-ce", 1)] = _record(machine={**_record()["machine"], "cpu_flags": ["avx512f"]})
    _unet_runs(tmp_path / "other", other)
    line = _claim_line(_report(tmp_path / "other", tmp_path / "o"))
    assert "NOT a test of the claim" in line
    assert "versions.tensorflow: 2.21.0 vs 2.20.0, 2.21.0" in line and "machine.cpu_flags" in line


def test_what_produced_the_runs_names_the_commits_that_trained_the_folds(tmp_path):
    runs = tmp_path / "runs"
    _unet_runs(runs, {("unet-focal", 0): _record(), ("unet-focal", 1): _record(),
                      ("unet-ce", 0): _record(), ("unet-ce", 1): _record(COMMIT_B)})
    md = _report(runs, tmp_path)
    section = md[md.index("### What produced the runs"):]
    assert COMMIT_ROOT[:12] not in section  # the root config.json's commit trained no fold
    assert "unet-ce fold 0; unet-focal fold 0, 1" in section and "unet-ce fold 1" in section
    assert "Xeon (avx512_bf16 amx_bf16)" in section and "CPU × 1" in section
    # and the first lines say that the folds do not share one provenance
    assert "**Folds from 2 different combinations of code, library versions and CPU**" in md[:md.index("## Comparison")]


def test_the_rcbf_rule_and_an_ensemble_beside_trained_folds_are_no_mixed_provenance(tmp_path):
    runs = tmp_path / "runs"
    _unet_runs(runs, {(n, k): _record() for n in ("unet-focal", "unet-ce") for k in (0, 1)})
    rule = _record(machine={**_record()["machine"], "devices": ["CPU"], "replicas": None})
    write_fake_run(runs, "threshold", DICE["threshold"], fold_provenance=lambda fold: rule)
    md = _report(runs, tmp_path)
    assert "different combinations" not in md and "threshold fold 0, 1" in md


def test_a_benchmark_from_uncommitted_code_says_so_in_its_first_lines(tmp_path):
    runs = tmp_path / "runs"
    same = {(n, k): _record() for n in ("unet-focal", "unet-ce") for k in (0, 1)}
    _unet_runs(runs, same)
    clean = _report(runs, tmp_path / "clean")
    assert "uncommitted" not in clean[:clean.index("## Comparison")]
    dirty = _record(tree_modified=True, diff_sha256="d" * 64)
    write_json_atomic(benchmark_record_path(runs), {"profile": "quick", "provenance": dirty, "cells": []})
    md = _report(runs, tmp_path)
    head = md[:md.index("## Comparison")]
    assert "**Made from uncommitted code.**" in head and f"{COMMIT_A[:12]} + changes {'d' * 12}" in head
