"""The benchmark grid: the default, grid-file validation, and `islesbench benchmark` with stand-in training."""

import argparse
import json
import types
from pathlib import Path

import pytest
from fake_runs import DICE, SPECS, config_of, write_fake_ensemble, write_fake_external, write_fake_run

from islesbench.commands import benchmark as benchmark_command
from islesbench.config import apply_overrides, parse_fold
from islesbench.errors import IslesbenchError
from islesbench.grid import runner as benchmark
from islesbench.grid.grid_file import (EnsembleCell, GridCell, benchmark_record_path, cell_overrides_path,
                                       grid_from_dict, load_grid, paper_grid)
from islesbench.inference import ensemble
from islesbench.reports.results_reader import read_run
from islesbench.storage import run_layout

PAPER_NAMES = ["pspnet-imagenet-focal", "pspnet-imagenet-ce", "pspnet-scratch-focal", "pspnet-scratch-ce",
               "unet-focal", "unet-ce", "vnet-focal", "vnet-ce", "threshold"]


def test_default_grid_is_the_papers():
    grid = paper_grid()
    assert [c.name for c in grid.cells] == PAPER_NAMES
    assert grid.ensemble == EnsembleCell(top_k=3) and grid.ensemble.run_name == "ensemble-top3"
    configs = dict((c.name, cfg) for c, cfg in grid.cell_configs("quick"))
    assert configs["pspnet-imagenet-focal"].model.pretrained == "imagenet"
    assert configs["vnet-ce"].loss.name == "ce" and configs["vnet-ce"].profile == "quick"
    assert load_grid(None).cells == grid.cells


def test_grid_file_changes_cells_overrides_and_ensemble(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps({
        "cells": [{"arch": "unet", "loss": "ce"},
                  {"arch": "unet", "loss": "ce", "name": "unet-ce-narrow", "overrides": {"model": {"base_width": 8}}},
                  {"arch": "threshold"}],
        "overrides": {"train": {"epochs": 2}},
        "ensemble": {"top_k": 2, "name": "ens"},
    }))
    grid = load_grid(path)
    configs = {c.name: cfg for c, cfg in grid.cell_configs("quick")}
    assert list(configs) == ["unet-ce", "unet-ce-narrow", "threshold"]
    assert all(cfg.train.epochs == 2 for cfg in configs.values())
    assert configs["unet-ce-narrow"].model.base_width == 8 and configs["unet-ce"].model.base_width == 16
    assert grid.ensemble.run_name == "ens" and grid.ensemble.top_k == 2
    narrow = grid.cells[1]
    assert grid.cell_overrides(narrow) == {"train": {"epochs": 2}, "model": {"base_width": 8}}
    assert narrow.run_command("d", "quick", "r", 5, config_file="c.json").endswith(
        "--config c.json --name unet-ce-narrow")
    assert grid_from_dict({"ensemble": None}).ensemble is None


@pytest.mark.parametrize("data, message", [
    ({"cels": []}, "unknown key 'cels'"),
    ({"cells": []}, "non-empty list"),
    ({"cells": [{"loss": "ce"}]}, "'arch' is required"),
    ({"cells": [{"arch": "resnet"}]}, "model.arch must be one of"),
    ({"cells": [{"arch": "unet", "loss": "hinge"}]}, "loss.name must be one of"),
    ({"cells": [{"arch": "unet", "pretrained": "imagenet"}]}, "applies to pspnet only"),
    ({"cells": [{"arch": "unet"}, {"arch": "unet", "loss": "focal"}]}, "both named 'unet-focal'"),
    ({"cells": [{"arch": "unet", "epochs": 3}]}, "unknown key 'epochs'"),
    ({"overrides": {"train": {"epoch": 3}}}, "unknown configuration field TrainConfig.epoch"),
    ({"ensemble": {"top_k": 1}}, "top_k must be an integer >= 2"),
    ({"ensemble": {"top_k": 3, "name": "unet-ce"}}, "also a cell's name"),
    ([1, 2], "must hold a JSON object"),
])
def test_grid_file_validation(data, message):
    with pytest.raises(IslesbenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        grid_from_dict(data)


def test_all_problems_are_listed_at_once():
    with pytest.raises(IslesbenchError) as err:
        grid_from_dict({"cells": [{"arch": "resnet"}, {"arch": "unet", "loss": "hinge"}], "ensemble": {"top_k": 0}})
    text = str(err.value)
    assert "cells[0]" in text and "cells[1]" in text and "top_k" in text


def test_missing_and_malformed_grid_files(tmp_path):
    with pytest.raises(IslesbenchError, match="does not exist"):
        load_grid(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{cells: ")
    with pytest.raises(IslesbenchError, match="not valid JSON"):
        load_grid(bad)


def test_run_command_reproduces_the_cell():
    cell = GridCell(arch="pspnet", loss="focal", pretrained="imagenet")
    assert cell.run_command("data dir", "quick", "runs", 5) == (
        "islesbench run --arch pspnet --pretrained imagenet --loss focal --data 'data dir' "
        "--profile quick --out runs --folds 5 --fold all")
    assert "--loss" not in GridCell(arch="threshold").run_command("d", "paper", "r", 5, fold=2)


# --------------------------------------------------------------------------------------------------
# The benchmark command with stand-ins for training and ensembling


def fake_prepare(data, runs_root, num_folds, seed=0, layout=None, target=None):
    """Stands in for islesbench.data_prep.prepare.resolve_prepared: prepared data with `num_folds` folds."""
    return types.SimpleNamespace(data=data, root=Path(runs_root) / "prepared",
                                 splits=lambda: [{"train": [], "val": []} for _ in range(num_folds)])


def run_benchmark(*args, **kwargs):
    """The grid runner with the callables the `benchmark` command passes (prepare stood in)."""
    return benchmark.run_benchmark(*args, prepare=fake_prepare, read_run=read_run, **kwargs)


class FakeTraining:
    """Stands in for islesbench.training.cross_validation.run_configuration: writes finished folds, refuses ImageNet offline."""

    def __init__(self):
        self.trained = []

    def __call__(self, config, prepared, runs_root, folds="all", force=False):
        if config.model.pretrained == "imagenet":
            raise IslesbenchError("ImageNet weights for the ResNet-50 encoder are not available offline")
        name = config.name
        if name not in SPECS:
            raise RuntimeError("a bug in training")
        todo = range(len(prepared.splits())) if folds == "all" else list(folds)
        todo = [k for k in todo if force or not run_layout.fold_paths(runs_root, name, k).is_done()]
        self.trained += [(name, k) for k in todo]
        write_fake_run(runs_root, name, DICE[name], folds=todo)
        return run_layout.run_dir(runs_root, name)


def fake_ensemble(run_dirs, out_dir, force=False, folds=None, record=None):
    write_fake_ensemble(out_dir.parent, [p.name for p in run_dirs], name=out_dir.name)
    return {}


def _grid():
    return grid_from_dict({"cells": [{"arch": "pspnet", "pretrained": "imagenet"}, {"arch": "pspnet"},
                                     {"arch": "unet"}, {"arch": "vnet"}, {"arch": "unet", "loss": "ce"},
                                     {"arch": "threshold"}],
                           "ensemble": {"top_k": 2}})


def test_benchmark_records_cells_resumes_and_ensembles(tmp_path):
    runs = tmp_path / "runs"
    fake = FakeTraining()
    record = run_benchmark(_grid(), "/data", runs, "quick", num_folds=2, run_configuration=fake,
                                     ensemble_runs=fake_ensemble)
    cells = {c["name"]: c for c in record["cells"]}
    assert cells["pspnet-imagenet-focal"]["status"] == "not run"
    assert "not available offline" in cells["pspnet-imagenet-focal"]["reason"]
    assert cells["pspnet-imagenet-focal"]["command"] == (
        f"islesbench run --arch pspnet --pretrained imagenet --loss focal --data /data --profile quick "
        f"--out {runs} --folds 2 --fold all")
    assert cells["unet-ce"]["status"] == "failed" and "RuntimeError" in cells["unet-ce"]["reason"]
    for name in ("pspnet-scratch-focal", "unet-focal", "vnet-focal", "threshold"):
        assert cells[name]["status"] == "done" and cells[name]["folds_trained"] == 2
        assert cells[name]["folds_done"] == [0, 1]
    # Per fold, the top-2 learned configurations by mean Dice on the other fold; never the threshold.
    ens = cells["ensemble-top2"]
    assert ens["status"] == "done" and ens["selection"] == "nested"
    assert ens["members_per_fold"] == {"0": ["unet-focal", "pspnet-scratch-focal"],
                                       "1": ["unet-focal", "pspnet-scratch-focal"]}
    assert record["provenance"]["versions"]["numpy"] and "commit" in record["provenance"]
    assert (runs / "ensemble-top2" / "fold_0" / "validation" / "metrics.csv").exists()
    on_disk = json.loads(benchmark_record_path(runs).read_text())
    assert on_disk["cells"] == json.loads(json.dumps(record["cells"]))
    assert on_disk["wall_seconds"] >= 0 and on_disk["finished"]

    # The same command again trains nothing: finished folds are skipped.
    fake.trained.clear()
    again = run_benchmark(_grid(), "/data", runs, "quick", num_folds=2, run_configuration=fake,
                                    ensemble_runs=fake_ensemble)
    assert fake.trained == []
    assert all(c["folds_trained"] == 0 for c in again["cells"] if c["kind"] == "run")


def test_ensemble_members_of_a_fold_are_chosen_on_the_other_folds_only():
    # A is best on fold 0, B on fold 1, C steady: over all cases A and B tie for the top, but fold 0's
    # cases may only be averaged over members ranked on fold 1 (B, C), and fold 1's over A, C.
    def rows(d0, d1):
        return {**{f"a{i}": (0, d0) for i in range(4)}, **{f"b{i}": (1, d1) for i in range(4)}}

    chosen, reason = benchmark.nested_ensemble_members({"A": rows(0.95, 0.5), "B": rows(0.5, 0.95),
                                                        "C": rows(0.7, 0.7)}, top_k=2)
    assert reason is None
    assert chosen[0]["members"] == ["B", "C"] and chosen[1]["members"] == ["A", "C"]
    assert chosen[0]["ranking"][0] == ["B", 0.95]


def test_fixed_members_are_used_for_every_fold(tmp_path):
    seen = []

    def ensemble(run_dirs, out_dir, force=False, folds=None, record=None):
        seen.append(([p.name for p in run_dirs], folds, record["selection"]["method"]))
        return fake_ensemble(run_dirs, out_dir)

    record = run_benchmark(_grid(), "/data", tmp_path / "runs", "quick", num_folds=2,
                                     run_configuration=FakeTraining(), ensemble_runs=ensemble,
                                     fixed_members=["vnet-focal", "unet-focal"])
    assert seen == [(["vnet-focal", "unet-focal"], [0], "fixed"), (["vnet-focal", "unet-focal"], [1], "fixed")]
    assert record["ensemble_selection"] == "fixed"


def test_members_that_are_not_runs_of_the_grid_are_refused_before_anything_trains(tmp_path, monkeypatch, capsys):
    fake = FakeTraining()
    with pytest.raises(IslesbenchError, match=r"unet-focl is not a run of this grid \(its configurations: "
                                              r"pspnet-imagenet-focal, pspnet-scratch-focal, unet-focal"):
        run_benchmark(_grid(), "/data", tmp_path / "runs", "quick", num_folds=2, run_configuration=fake,
                      ensemble_runs=fake_ensemble, fixed_members=["vnet-focal", "unet-focl"])
    assert fake.trained == [] and not (tmp_path / "runs").exists()
    in_process(monkeypatch, fake)
    from islesbench.cli import main

    assert main(["benchmark", "--data", "/d", "--out", str(tmp_path / "runs"), "--folds", "2",
                 "--members", "threshold,unet-focal"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "threshold is not a run of this grid" in err[0]


def test_an_ensemble_of_a_flagged_member_is_flagged(tmp_path):
    """The ensemble row said "nested" even when a member was tuned on its scored folds: members' flags carry over."""
    from islesbench.reports.results_reader import collect_runs, group_runs
    from islesbench.reports.tables import selection_flag

    class LeakyTraining(FakeTraining):
        def __call__(self, config, prepared, runs_root, folds="all", force=False):
            run = super().__call__(config, prepared, runs_root, folds, force)
            if config.name == "unet-focal":  # as if its hyperparameters came from a search on the scored folds
                data = json.loads((run / "config.json").read_text())
                (run / "config.json").write_text(json.dumps({**data, "tuning": {"nested": False}}))
            return run

    runs = tmp_path / "runs"
    record = run_benchmark(_grid(), "/data", runs, "quick", num_folds=2, run_configuration=LeakyTraining(),
                           ensemble_runs=fake_ensemble)
    assert record["cells"][-1]["members_per_fold"]["0"] == ["unet-focal", "pspnet-scratch-focal"]
    config = json.loads((runs / "ensemble-top2" / "config.json").read_text())
    assert config["member_flags"] == {"unet-focal": ["tuned on the folds it is scored on (non-nested): optimistic"]}
    groups = {g.name: g for g in group_runs(collect_runs(runs)[0])}
    flag = selection_flag(groups["ensemble-top2"])
    assert "member unet-focal: tuned on the folds it is scored on (non-nested): optimistic" in flag


def test_an_external_row_is_an_ensemble_member_only_when_named(tmp_path):
    runs = tmp_path / "runs"
    write_fake_external(runs, "nnunet-2d", [0.99] * 10)  # the best row by far, but imported, not a cell
    seen = []

    def ensemble(run_dirs, out_dir, force=False, folds=None, record=None):
        seen.append([p.name for p in run_dirs])
        return fake_ensemble(run_dirs, out_dir)

    record = run_benchmark(_grid(), "/data", runs, "quick", num_folds=2, run_configuration=FakeTraining(),
                           ensemble_runs=ensemble)
    assert seen and not any("nnunet-2d" in members for members in seen)
    assert "nnunet-2d" not in json.dumps(record["cells"][-1]["members_per_fold"])
    seen.clear()
    record = run_benchmark(_grid(), "/data", runs, "quick", num_folds=2, run_configuration=FakeTraining(),
                           ensemble_runs=ensemble, fixed_members=["nnunet-2d", "unet-focal"], force=True)
    assert seen == [["nnunet-2d", "unet-focal"], ["nnunet-2d", "unet-focal"]]
    assert record["cells"][-1]["status"] == "done"


def test_seeds_repeat_every_cell_into_its_own_folder(tmp_path):
    trained = []

    def training(config, prepared, runs_root, folds="all", force=False):
        trained.append((config.name, config.train.seed))
        base = config_of(config.name.split("-seed")[0])
        write_fake_run(runs_root, config.name, DICE[base.name], folds=[0, 1],
                       config=apply_overrides(base, {"train": {"seed": config.train.seed}}))

    grid = grid_from_dict({"cells": [{"arch": "unet"}, {"arch": "vnet"}, {"arch": "threshold"}], "ensemble": None})
    record = run_benchmark(grid, "/d", tmp_path / "runs", "quick", num_folds=2, run_configuration=training,
                                     seeds=3)
    # the threshold rule has no seed: one run (a second would clash with the first's folder)
    assert trained == [("unet-focal", 0), ("vnet-focal", 0), ("threshold", 0), ("unet-focal-seed1", 1),
                       ("vnet-focal-seed1", 1), ("unet-focal-seed2", 2), ("vnet-focal-seed2", 2)]
    assert [c["seed"] for c in record["cells"]] == [0, 0, 0, 1, 1, 2, 2]
    assert "--seed 2" in record["cells"][-1]["command"]


def test_the_threshold_rule_runs_once_on_all_patients_whatever_the_fractions_and_seeds(tmp_path):
    grid = grid_from_dict({"cells": [{"arch": "unet"}, {"arch": "threshold"}], "train_fractions": [0.25, 0.5],
                           "ensemble": None})
    configs = [cfg for seed in range(2) for _, cfg in grid.cell_configs("quick", seed)]
    assert [c.name for c in configs] == ["unet-focal-frac0.5", "threshold", "unet-focal-frac0.25",
                                         "unet-focal-frac0.5-seed1", "unet-focal-frac0.25-seed1"]
    threshold = configs[1]
    assert (threshold.data.train_fraction, threshold.train.seed) == (1.0, 0)  # as a full-data run names it
    cell = GridCell(arch="threshold")
    assert cell.config("quick", seed=2, fraction=0.5) == cell.config("quick")
    command = cell.run_command("d", "quick", tmp_path, 2, seed=2, fraction=0.5)
    assert "--seed" not in command and "--train-fraction" not in command


def test_ensemble_not_run_with_fewer_than_two_finished(tmp_path):
    grid = grid_from_dict({"cells": [{"arch": "unet"}, {"arch": "threshold"}]})
    record = run_benchmark(grid, "/d", tmp_path / "runs", "quick", num_folds=2,
                                     run_configuration=FakeTraining(), ensemble_runs=fake_ensemble)
    ens = record["cells"][-1]
    assert ens["kind"] == "ensemble" and ens["status"] == "not run" and "at least 2" in ens["reason"]
    assert ens["command"].startswith("islesbench ensemble ")


def test_cell_with_overrides_gets_a_config_file_in_its_command(tmp_path):
    grid = grid_from_dict({"cells": [{"arch": "pspnet", "pretrained": "imagenet"}],
                           "overrides": {"train": {"epochs": 1}}, "ensemble": None})
    record = run_benchmark(grid, "/d", tmp_path / "runs", "quick", num_folds=2,
                                     run_configuration=FakeTraining())
    command = record["cells"][0]["command"]
    config_file = command.split("--config ")[1]
    assert json.loads(open(config_file).read()) == {"train": {"epochs": 1}}


def in_process(monkeypatch, training):
    """The command's runner with a stand-in trainer in this process (no child per cell)."""
    real = benchmark_command.run_benchmark
    monkeypatch.setattr(benchmark_command, "run_benchmark",
                        lambda *a, **k: real(*a, run_configuration=training, **k))


def test_benchmark_command_runs_the_grid_then_the_report(tmp_path, monkeypatch, capsys):
    # The runner starts a child per cell and calls islesbench.inference.ensemble, the command
    # islesbench.data_prep.prepare.resolve_prepared; stand-ins take their place here.
    in_process(monkeypatch, FakeTraining())
    monkeypatch.setattr(ensemble, "ensemble_runs", fake_ensemble)
    monkeypatch.setattr(benchmark_command, "resolve_prepared", fake_prepare)
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(json.dumps({"cells": [{"arch": "pspnet", "pretrained": "imagenet"}, {"arch": "unet"},
                                               {"arch": "vnet"}, {"arch": "threshold"}],
                                     "ensemble": {"top_k": 2}}))
    parser = argparse.ArgumentParser()
    benchmark_command.configure_parser(parser)
    runs = tmp_path / "runs"
    args = parser.parse_args(["--data", "/d", "--out", str(runs), "--grid", str(grid_file), "--folds", "2"])
    assert benchmark_command.run_command(args) == 0  # a cell that could not run is reported, not a failure
    out = capsys.readouterr().out
    assert "pspnet-imagenet-focal" in out and "not run" in out and "benchmark wall time" in out
    md = (runs / "report" / "report.md").read_text()
    assert "**pspnet-imagenet-focal** (not run)" in md
    assert "islesbench run --arch pspnet --pretrained imagenet" in md
    assert "[ensemble-top2](../ensemble-top2/config.json)" in md
    assert (runs / "report" / "report.html").exists() and (runs / "report" / "results.csv").exists()


def test_fold_argument_is_checked():
    assert parse_fold("all", 5) == "all" and parse_fold("3", 5) == 3
    with pytest.raises(IslesbenchError):
        parse_fold("5", 5)
    with pytest.raises(IslesbenchError):
        parse_fold("x", 5)


def test_single_fold_is_passed_as_a_list(tmp_path):
    seen = []

    def training(config, prepared, runs_root, folds="all", force=False):
        seen.append(folds)
        write_fake_run(runs_root, config.name, DICE[config.name], folds=list(folds))

    grid = grid_from_dict({"cells": [{"arch": "unet"}], "ensemble": None})
    record = run_benchmark(grid, "/d", tmp_path / "runs", "quick", num_folds=2, fold=1,
                                     run_configuration=training)
    assert seen == [[1]] and record["cells"][0]["status"] == "done" and record["cells"][0]["folds_done"] == [1]
    assert "--fold 1" in record["cells"][0]["command"]


@pytest.mark.slow
def test_tiny_grid_end_to_end(tmp_path):
    """Real training: U-Net focal/CE and the threshold on a 6-case synthetic cohort, 2 folds, 1 short
    epoch, then the ensemble of both U-Nets and the report."""
    from islesbench.data_prep.synth import synthesize_cohort

    data = tmp_path / "synth"
    synthesize_cohort(data, cases=6, seed=0, size=64)
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(json.dumps({
        "cells": [{"arch": "unet"}, {"arch": "unet", "loss": "ce"}, {"arch": "threshold"}],
        "overrides": {"train": {"epochs": 1, "steps_per_epoch": 2}, "data": {"input_size": 64}},
        "ensemble": {"top_k": 2},
    }))
    runs = tmp_path / "runs"
    parser = argparse.ArgumentParser()
    benchmark_command.configure_parser(parser)
    args = parser.parse_args(["--data", str(data), "--profile", "quick", "--out", str(runs),
                              "--grid", str(grid_file), "--folds", "2"])
    rc = benchmark_command.run_command(args)
    record = json.loads(benchmark_record_path(runs).read_text())
    assert rc == 0, record
    assert all(c["status"] == "done" for c in record["cells"])
    md = (runs / "report" / "report.md").read_text()
    for name in ("unet-focal", "unet-ce", "threshold", "ensemble-top2"):
        assert f"[{name}](../{name}/config.json)" in md
    assert "synthetic" in md
    figures = {p.name for p in (runs / "report" / "figures").iterdir()}
    assert {"dice_box.png", "learning_curves.png", "dice_vs_volume.png", "example_slices.png"} <= figures


def test_a_tuned_cell_runs_each_outer_fold_with_its_own_search(tmp_path):
    nested = tmp_path / "tune"
    for k, width in ((0, 4), (1, 8)):
        (nested / f"outer_fold_{k}").mkdir(parents=True)
        (nested / f"outer_fold_{k}" / "best_hparams.json").write_text(json.dumps(
            {"config_overrides": {"model": {"base_width": width}}, "outer_fold": k, "outer_val": []}))
    single = tmp_path / "best_hparams.json"
    single.write_text(json.dumps({"config_overrides": {"model": {"base_width": 4}}, "outer_fold": None}))
    seen = {}

    def training(config, prepared, runs_root, folds="all", force=False, tuned=None):
        seen[config.name] = tuned
        write_fake_run(runs_root, "unet-focal", DICE["unet-focal"], config=config)

    grid = grid_from_dict({"cells": [{"arch": "unet", "hparams": str(nested)}, {"arch": "unet", "hparams": str(single)}],
                           "ensemble": None})
    record = run_benchmark(grid, "/d", tmp_path / "runs", "quick", num_folds=2, run_configuration=training)
    assert [c["name"] for c in record["cells"]] == ["unet-focal-tuned", "unet-focal-tuned-nonnested"]
    assert seen["unet-focal-tuned"].nested and seen["unet-focal-tuned"].per_fold[1] == {"model": {"base_width": 8}}
    assert not seen["unet-focal-tuned-nonnested"].nested
    assert f"--hparams {nested}" in record["cells"][0]["command"]
    assert grid.cells[1].config("quick").model.base_width == 4  # a single search's choice applies to every fold


def test_benchmark_precision_reaches_every_cell_and_its_command(tmp_path, monkeypatch, capsys):
    seen = {}

    def training(config, prepared, runs_root, folds="all", force=False):
        seen[config.name] = config.train.precision
        write_fake_run(runs_root, config.name, DICE[config.name], folds=list(range(len(prepared.splits()))))

    in_process(monkeypatch, training)
    monkeypatch.setattr(benchmark_command, "resolve_prepared", fake_prepare)
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(json.dumps({"cells": [{"arch": "unet"}, {"arch": "vnet"}], "ensemble": None,
                                     "overrides": {"train": {"epochs": 1}}}))
    parser = argparse.ArgumentParser()
    benchmark_command.configure_parser(parser)
    runs = tmp_path / "runs"
    args = parser.parse_args(["--data", "/d", "--out", str(runs), "--grid", str(grid_file), "--folds", "2",
                              "--precision", "float32", "--no-report"])
    assert benchmark_command.run_command(args) == 0
    assert seen == {"unet-focal": "float32", "vnet-focal": "float32"}
    record = json.loads(benchmark_record_path(runs).read_text())
    for cell in record["cells"]:
        overrides = json.loads(cell_overrides_path(runs, cell["name"]).read_text())
        assert overrides == {"train": {"epochs": 1, "precision": "float32"}}  # the grid's own overrides kept
        assert str(cell_overrides_path(runs, cell["name"])) in cell["command"]
