"""Reading a runs folder (reports/results_reader.py): the patient map travels with the runs, and a run
without one is refused rather than counted slab by slab; seeds share a row only when nothing else differs."""

from __future__ import annotations

import csv
import shutil

import pytest
from fake_runs import DICE, write_fake_run

from islesbench.cli import main
from islesbench.config import apply_overrides, profile_config
from islesbench.errors import IslesbenchError
from islesbench.reports.report import build_report
from islesbench.reports.results_reader import collect_runs, group_runs
from islesbench.storage import manifest
from islesbench.training.cross_validation import run_configuration


def test_a_moved_runs_folder_keeps_its_patients(tiny_prepared, tmp_path):
    prepared_copy = tmp_path / "prepared"
    shutil.copytree(tiny_prepared.root, prepared_copy)
    runs = tmp_path / "runs"
    config = apply_overrides(profile_config("quick"), {"model": {"arch": "threshold"}})
    run_configuration(config, manifest.PreparedData(prepared_copy), runs)
    patients = tiny_prepared.patients()
    two_slabs = [p for p in set(patients.values()) if list(patients.values()).count(p) == 2]
    assert two_slabs  # the tiny cohort has patients with two slabs, which the report must count once
    shutil.rmtree(prepared_copy)  # config.json's absolute `prepared` path now leads nowhere
    moved = tmp_path / "elsewhere" / "runs"
    shutil.move(str(runs), moved)
    build_report(moved, tmp_path / "report")
    with open(tmp_path / "report" / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["case"]: r["patient"] for r in rows} == {c: patients[c] for c in (r["case"] for r in rows)}
    md = (tmp_path / "report" / "report.md").read_text()
    assert f"{len(set(patients.values()))} patients, {len(patients)} cases; patients from {moved / 'threshold'}" in md


def test_a_run_without_a_patient_map_is_refused_with_one_line(tmp_path, capsys):
    runs = tmp_path / "runs"
    run = write_fake_run(runs, "unet-focal", DICE["unet-focal"], prepared=tmp_path / "gone")
    (run / "patients.json").unlink(missing_ok=True)
    with pytest.raises(IslesbenchError, match="patients.json: missing"):
        build_report(runs, tmp_path / "report")
    assert main(["report", str(runs), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(run / "patients.json") in err and "Traceback" not in err


def test_runs_made_before_the_map_was_kept_read_the_prepared_datas_and_say_so(tmp_path):
    from fake_runs import write_fake_prepared

    prepared = write_fake_prepared(tmp_path / "prepared")
    runs = tmp_path / "runs"
    run = write_fake_run(runs, "unet-focal", DICE["unet-focal"], prepared=prepared)
    (run / "patients.json").unlink(missing_ok=True)
    build_report(runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert f"patients from {prepared / 'patients.json'} (the prepared data unet-focal names; not kept with the run)" in md



def _write_seed_runs(runs, loss: str, precision_of_seed1: str) -> None:
    """Seeds 0 and 1 of a U-Net; seed 1 as a second `benchmark --seeds 2 --precision ...` into the same folder."""
    for seed in (0, 1):
        train = {"seed": seed, **({"precision": precision_of_seed1} if seed else {})}
        cfg = apply_overrides(profile_config("quick"), {"model": {"arch": "unet"}, "loss": {"name": loss},
                                                        "train": train})
        write_fake_run(runs, cfg.name, [d - 0.05 * seed - (0.1 if loss == "ce" else 0) for d in DICE["unet-focal"]],
                       config=cfg)


def test_seed_runs_of_one_configuration_form_one_group(tmp_path):
    _write_seed_runs(tmp_path, "focal", "auto")
    groups = group_runs(collect_runs(tmp_path)[0])
    assert [(g.name, g.seeds, g.mixed) for g in groups] == [("unet-focal", [0, 1], "")]


def test_a_seed_run_of_another_configuration_is_split_off_and_flagged(tmp_path):
    _write_seed_runs(tmp_path, "focal", "float32")
    groups = group_runs(collect_runs(tmp_path)[0])
    assert [(g.name, g.seeds) for g in groups] == [("unet-focal", [0]), ("unet-focal [seeds 1]", [1])]
    for g in groups:
        assert "train.precision auto → float32" in g.mixed and "split into separate rows" in g.mixed


def test_a_mixed_seed_group_is_never_merged_nor_a_controlled_claim(tmp_path, capsys):
    runs = tmp_path / "runs"
    for loss in ("focal", "ce"):
        _write_seed_runs(runs, loss, "float32")
    build_report(runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| [unet-focal")]
    assert len(rows) == 2 and all("MIXED SEEDS" in r for r in rows)
    claim = next(line for line in md.splitlines() if line.startswith("| focal > CE (unet) |"))
    assert "controlled" not in claim.replace("NOT a test", "")
    assert "seed runs of other configurations" in claim
    assert "warning: the runs named unet-focal" in capsys.readouterr().err
