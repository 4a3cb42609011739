"""Data efficiency in the benchmark and the report: train fractions, per-fold self-supervised cells, the curve."""

from __future__ import annotations

import json

import pytest
from fake_runs import CASES, PATIENTS, write_fake_prepared, write_fake_run

from islesbench.config import apply_overrides, profile_config
from islesbench.errors import IslesbenchError
from islesbench.grid import runner as benchmark
from islesbench.grid.grid_file import grid_from_dict
from islesbench.grid.selfsup_cells import selfsup_dir
from islesbench.reports.results_reader import read_run
from islesbench.storage import run_layout

GRID = {"cells": [{"arch": "pspnet"}, {"arch": "pspnet", "pretrained": "selfsup"},
                  {"arch": "pspnet", "pretrained": "imagenet"}, {"arch": "threshold"}],
        "train_fractions": [1.0, 0.25, 0.5],
        "pretraining": {"data": ["unlabelled"], "overrides": {"epochs": 3}},
        "ensemble": {"top_k": 2}}


def test_grid_runs_every_learned_cell_per_fraction_and_selfsup_from_the_benchmark_folder(tmp_path):
    grid = grid_from_dict(GRID)
    assert grid.train_fractions == (0.25, 0.5, 1.0) and grid.uses_selfsup()
    configs = grid.cell_configs("quick", runs_root=tmp_path)
    names = [cfg.name for _, cfg in configs]
    assert names[:4] == ["pspnet-scratch-focal", "pspnet-selfsup-focal", "pspnet-imagenet-focal", "threshold"]
    assert "pspnet-selfsup-focal-frac0.25" in names and names.count("threshold") == 1 and len(names) == 10
    by_name = {cfg.name: (cell, cfg) for cell, cfg in configs}
    cell, selfsup = by_name["pspnet-selfsup-focal-frac0.25"]
    scratch = by_name["pspnet-scratch-focal-frac0.25"][1]
    assert selfsup.model.pretrained == str(selfsup_dir(tmp_path)) and selfsup.data.train_fraction == 0.25
    # matched with scratch at the same fraction: same width, input size, schedule, learning rate
    for field in ("encoder_width",):
        assert getattr(selfsup.model, field) == getattr(scratch.model, field) == 0.125
    assert (selfsup.data.input_size, selfsup.optimizer.learning_rate) == (scratch.data.input_size,
                                                                          scratch.optimizer.learning_rate)
    command = cell.run_command("d", "quick", tmp_path, 3, fraction=0.25)
    assert f"--pretrained {selfsup_dir(tmp_path)}" in command and command.endswith("--train-fraction 0.25")


@pytest.mark.parametrize("change, message", [
    ({"pretraining": None}, "has no \"pretraining\" block"),
    ({"train_fractions": [0, 1]}, "train_fractions must be"),
    ({"train_fractions": [0.5, True]}, "train_fractions must be .*: True is not a number"),
    ({"pretraining": {"data": "x"}}, "pretraining.data must be a list"),
    ({"pretraining": {"data": ["x"], "steps": 3}}, "unknown key 'steps'"),
    ({"pretraining": {"data": ["x"], "overrides": {"epochs": 0}}}, "epochs, steps_per_epoch"),
    ({"pretraining": {"include_finetune_cohort": False}}, "pretraining has no data"),
])
def test_grid_file_problems(change, message):
    with pytest.raises(IslesbenchError, match=message):
        grid_from_dict({**GRID, **change})


def _dice(name: str) -> list:
    """Scratch improves with data; self-supervised is 0.1 better at a quarter, equal with all patients."""
    fraction = 0.25 if "frac0.25" in name else 0.5 if "frac0.5" in name else 1.0
    base = 0.4 + 0.3 * fraction + (0.1 * (1 - fraction) if "selfsup" in name else 0.0)
    return [round(base + 0.01 * (i % 4), 3) for i in range(len(CASES))]


def run_benchmark(*args, **kwargs):
    """The grid runner with the callables the `benchmark` command passes (preparing the data stood in: the
    training stand-in writes its runs on its own fake prepared data)."""
    return benchmark.run_benchmark(*args, prepare=lambda data, runs_root, num_folds, seed=0, layout=None: None,
                                   read_run=read_run, **kwargs)


class Training:
    """Stands in for run_configuration: fake finished folds; ImageNet is not available offline."""

    def __init__(self, prepared):
        self.prepared, self.seen = prepared, []

    def __call__(self, config, prepared, runs_root, folds="all", force=False):
        if config.model.pretrained == "imagenet":
            raise IslesbenchError("ResNet-50 ImageNet weights are not cached at /k/models and could not be downloaded")
        self.seen.append((config.name, config.model.pretrained, config.data.train_fraction))
        extras = {}
        if config.data.train_fraction < 1:
            extras["train_patients"] = {"0": round(4 * config.data.train_fraction) or 1, "1": round(4 * config.data.train_fraction) or 1}
        if config.model.pretrained:
            extras["pretraining"] = {"source": config.model.pretrained, "per_fold": True, "method": "models-genesis",
                                     "folds": {str(k): {"method": "models-genesis", "epochs": 3, "steps_per_epoch": 40,
                                                        "cohorts": [{"cohort": "synthetic (seed 1)", "n_cases": 60,
                                                                     "n_slices": 349, "cases_fingerprint": "ab"}],
                                                        "excluded": {"fold": k, "patients": ["p"], "cases": ["c"]},
                                                        "saw_validation_cases": 0, "seconds": 100.0} for k in (0, 1)}}
        write_fake_run(runs_root, config.name, _dice(config.name), config=config, prepared=self.prepared, extras=extras)


def _pretraining(status="done"):
    def fake(block, data, runs_root, profile, folds, num_folds, layout=None, force=False, config_file=None, *,
             prepare, run_child=None, announce=None):
        entry = {"name": "pretraining/selfsup", "kind": "pretraining", "status": status, "seconds": 600.0,
                 "folds": {str(k): {"status": status, "seconds": 300.0} for k in folds},
                 "command": f"islesbench pretrain --data unlabelled --exclude-fold all --out {selfsup_dir(runs_root)}"}
        if status != "done":
            entry["reason"] = "--data unlabelled does not exist"
        return entry
    return fake


def test_benchmark_pretrains_then_runs_the_curve_and_ensembles_full_data_cells(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark, "run_selfsup_pretraining", _pretraining())
    prepared = write_fake_prepared(tmp_path / "prepared")
    training = Training(prepared)
    ensembled = []

    def ensemble(run_dirs, out_dir, force=False, folds=None, record=None):
        ensembled.extend(p.name for p in run_dirs)

    record = run_benchmark(grid_from_dict(GRID), "/d", tmp_path / "runs", "quick", num_folds=2,
                                     run_configuration=training, ensemble_runs=ensemble)
    assert record["pretraining"]["status"] == "done" and record["train_fractions"] == [0.25, 0.5, 1.0]
    cells = {c["name"]: c for c in record["cells"]}
    assert cells["pspnet-selfsup-focal-frac0.5"]["status"] == "done"
    assert cells["pspnet-selfsup-focal-frac0.5"]["train_fraction"] == 0.5
    assert cells["pspnet-imagenet-focal-frac0.25"]["status"] == "not run"
    assert ("pspnet-selfsup-focal-frac0.25", str(selfsup_dir(tmp_path / "runs")), 0.25) in training.seen
    assert ensembled and not any("frac" in name for name in ensembled)  # the ensemble is of full-data rows

    from islesbench.reports.report import build_report

    paths = build_report(tmp_path / "runs", tmp_path / "report")
    md = paths["report_md"].read_text()
    section = md.split("## Data efficiency")[1].split("\n## ")[0]
    assert (tmp_path / "report" / "figures" / "data_efficiency.png").is_file()
    assert "| pspnet-selfsup-focal | self-supervised | 0.25 | 1.0 | 150 |" in section  # 6 epochs x 25 steps
    assert "Optimizer steps held fixed across fractions: every row trains for its configured" in section
    assert "**ImageNet** line not run: ResNet-50 ImageNet weights are not cached" in section
    assert "islesbench run --arch pspnet --pretrained imagenet" in section
    # self-supervised vs scratch per fraction: matched pairs, tested; +0.075 at 0.25 and no difference at 1.0
    row = next(line for line in section.splitlines() if line.startswith("| self-supervised > scratch, pspnet focal, fraction 0.25"))
    assert "+0.075" in row and "| controlled" in row
    assert "all paired differences are zero" in next(
        line for line in section.splitlines() if "fraction 1 |" in line and line.startswith("| self-supervised"))
    # the full-data pair is the claims table's to test: shown here, outside this table's Holm family
    full = next(line for line in section.splitlines() if "fraction 1 |" in line and line.startswith("| self-supervised"))
    assert "| — | see the claims table | — |" in full
    assert "| +0.075 [+0.075, +0.075] | 0.0 | 0.004 | 0.008 |" in row  # W shown, p formatted as in the claims
    assert "What each pretrained row was pretrained on" in section and "synthetic (seed 1) (60 cases" in section
    # the paper's claim table keeps to full-data rows; fractions are tested in the curve section only
    claims = md.split("The paper's claims")[1].split("## Data efficiency")[0]
    assert "frac0.25" not in claims and "pretrained (selfsup) > scratch" in claims
    # nor do they enter the Holm family against the best; the curve says what the encoder saw
    versus_best = md.split("against the best")[1].split("The paper's claims")[0]
    assert "frac0" not in versus_best and "pspnet-selfsup-focal vs best" in versus_best
    assert "unlabelled images of more patients than scratch has labelled ones" in section


def test_unfinished_pretraining_marks_selfsup_cells_not_run_with_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark, "run_selfsup_pretraining", _pretraining("not run"))
    training = Training(write_fake_prepared(tmp_path / "prepared"))
    record = run_benchmark(grid_from_dict({**GRID, "train_fractions": [1.0]}), "/d", tmp_path / "runs",
                                     "quick", num_folds=2, run_configuration=training, ensemble_runs=lambda *a, **k: None)
    cell = next(c for c in record["cells"] if c["name"] == "pspnet-selfsup-focal")
    assert cell["status"] == "not run" and "does not exist" in cell["reason"] and "islesbench pretrain" in cell["reason"]
    assert not any(name == "pspnet-selfsup-focal" for name, _, _ in training.seen)


def test_a_single_pretrained_file_that_saw_validation_cases_is_flagged(tmp_path):
    from islesbench.reports.report import build_report

    prepared = write_fake_prepared(tmp_path / "prepared")
    config = apply_overrides(profile_config("quick", "pspnet", "ssl/ssl.keras"), {})
    write_fake_run(tmp_path / "runs", config.name, _dice("x"), config=config, prepared=prepared,
                   extras={"pretraining": {"source": "ssl/ssl.keras", "per_fold": False, "method": "models-genesis",
                                           "folds": {"0": {"saw_validation_cases": 5}, "1": {"saw_validation_cases": 5}}}})
    md = build_report(tmp_path / "runs", tmp_path / "report")["report_md"].read_text()
    assert "encoder pretrained on 10 of its validation cases (images only): optimistic" in md
    assert len(PATIENTS) == len(CASES)
    assert run_layout.run_dir(tmp_path / "runs", "pspnet-ssl-focal").is_dir()


def test_training_patients_come_from_the_record_of_the_folds_that_ran():
    from types import SimpleNamespace

    from islesbench.reports import curve

    one_fold = SimpleNamespace(folds=[0], rows=[{"case": "a", "fold": 0}, {"case": "b", "fold": 0}])
    group = SimpleNamespace(config={"train_patients": {"0": 16, "1": 15}}, runs=[one_fold], patient=lambda c: c)
    assert curve.training_patients(group) == 16  # the rows alone name no training patient of fold 0


def test_the_curve_says_whether_fractions_trained_for_the_same_optimizer_steps(tmp_path):
    from fake_runs import fake_training_facts

    from islesbench.reports.report import build_report

    prepared = write_fake_prepared(tmp_path / "prepared")
    paper = apply_overrides(profile_config("paper", "unet"), {"train": {"epochs": 2}})  # steps_per_epoch None

    def write(fraction, choice, steps):
        config = apply_overrides(paper, {"data": {"train_fraction": fraction}, "train": {"fraction_steps": choice}})
        facts = {**fake_training_facts(config), "optimizer_steps": steps}
        write_fake_run(tmp_path / "runs", config.name, _dice(config.name), config=config, prepared=prepared,
                       facts=facts, extras={"train_patients": {"0": 2, "1": 2}} if fraction < 1 else None)

    write(1.0, "matched", 80)
    write(0.5, "matched", 80)
    section = build_report(tmp_path / "runs", tmp_path / "r1")["report_md"].read_text().split("## Data efficiency")[1]
    assert "Optimizer steps held fixed across fractions: with `train.fraction_steps` matched" in section
    assert "| unet-focal | scratch | 0.5 | 2.0 | 80 |" in section
    write(0.25, "proportional", 20)
    section = build_report(tmp_path / "runs", tmp_path / "r2")["report_md"].read_text().split("## Data efficiency")[1]
    assert "Optimizer steps NOT held fixed across fractions for unet-focal-frac0.25" in section
    assert "| unet-focal | scratch | 0.25 | 2.0 | 20 |" in section and "steps NOT held fixed across fractions" in section
