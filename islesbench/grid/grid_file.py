"""The benchmark grid: which configurations `islesbench benchmark` runs, and a JSON file that changes it.

The default is the paper's comparison (Abulnaga & Rubin 2018): PSPNet with an ImageNet-pretrained and a
from-scratch encoder, U-Net (2D) and V-Net (3D), each with focal loss and cross-entropy, the rCBF threshold
baseline, and an ensemble of the top-k configurations (chosen per fold on the other folds; islesbench/grid/runner.py).

A grid file is a JSON object; every key is optional:

    {
      "cells": [                                  # replaces the default cells
        {"arch": "pspnet", "pretrained": "imagenet", "loss": "focal"},
        {"arch": "unet", "loss": "ce", "overrides": {"model": {"base_width": 8}}, "name": "unet-ce-narrow"},
        {"arch": "unet", "loss": "focal", "hparams": "tune/unet-focal"},   # nested searches per outer fold
        {"arch": "threshold"}
      ],
      "overrides": {"train": {"epochs": 2}},     # applied to every cell before its own overrides
      "ensemble": {"top_k": 3, "name": "ensemble-top3"},  # or null: no ensemble cell
      "train_fractions": [0.25, 0.5, 1.0],       # every learned cell on these shares of each fold's
                                                 # training patients (benchmark --train-fraction wins)
      "pretraining": {                           # what a cell with "pretrained": "selfsup" starts from
        "data": ["unlabelled_cohort"],           # unlabelled cohorts (raw or prepared), besides ...
        "include_finetune_cohort": true,         # ... the benchmark's --data (fold k's validation left out)
        "overrides": {"epochs": 10}              # PretrainConfig fields (islesbench/selfsup/pretrain.py)
      }
    }

`overrides` use the nested sections of ExperimentConfig (`islesbench.config.apply_overrides`). A cell whose
overrides change the numbers should carry its own `name`, so that two cells never share a run folder.
`hparams` takes what `islesbench run --hparams` takes (islesbench/training/hparams.py): a folder of nested searches
`outer_fold_<k>/` gives a `-tuned` row in which each outer fold used its own search; a single
best_hparams.json gives a `-tuned-nonnested` row, flagged in every table.

`"pretrained": "selfsup"` is self-supervised pretraining done by the benchmark itself, once per fold:
fold k's encoder is pretrained (`islesbench pretrain --exclude-fold k`) on the pretraining block's cohorts
and the benchmark's cohort without fold k's validation patients, into RUNS/pretraining/selfsup/, and the
cell fine-tunes fold k from it (`run --pretrained RUNS/pretraining/selfsup`). With train fractions below 1
a cell runs once per fraction (`<name>-frac0.25`); the threshold rule, which learns nothing, runs once.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from islesbench.config import (ExperimentConfig, apply_overrides, fraction_name, profile_config, read_json_file,
                               seeded_name)
from islesbench.data.fractions import parse_fractions
from islesbench.errors import IslesbenchError
from islesbench.grid.selfsup_cells import SELFSUP, PretrainingBlock, parse_pretraining, selfsup_dir
from islesbench.training.hparams import read_tuned_hparams, tuned_name

# The record of a benchmark: one file in the runs root, beside the run folders.
BENCHMARK_RECORD = "benchmark.json"
# Per-cell override files that the "command that would run it" refers to.
GRID_CONFIGS_DIR = "benchmark_configs"

_CELL_KEYS = {"arch", "loss", "pretrained", "overrides", "name", "hparams"}
_ENSEMBLE_KEYS = {"top_k", "name"}
_GRID_KEYS = {"cells", "overrides", "ensemble", "train_fractions", "pretraining"}


def benchmark_record_path(runs_root) -> Path:
    """Where `islesbench benchmark` records the status and timing of every cell."""
    return Path(runs_root) / BENCHMARK_RECORD


def cell_overrides_path(runs_root, cell_name: str) -> Path:
    """The JSON file passed as `--config` in the command that would run a cell with overrides."""
    return Path(runs_root) / GRID_CONFIGS_DIR / f"{cell_name}.json"


@dataclass(frozen=True)
class GridCell:
    """One configuration of the grid: an ordinary `islesbench run`."""

    arch: str
    loss: str = "focal"
    pretrained: str | None = None
    overrides: dict = field(default_factory=dict, compare=False, hash=False)
    name_override: str | None = None
    hparams: str | None = None  # `islesbench tune` result: best_hparams.json or a folder of nested searches

    def tuned(self):
        """The cell's tuned hyperparameters (islesbench.training.hparams.TunedHparams), or None."""
        if not self.hparams:
            return None

        return read_tuned_hparams(self.hparams)

    @property
    def learned(self) -> bool:
        """False for the threshold rule, which trains nothing (and so runs at one training fraction)."""
        return self.arch != "threshold"

    def pretrained_source(self, runs_root=None) -> str | None:
        """What `--pretrained` gets: the benchmark's per-fold pretraining folder for "selfsup" cells."""
        if self.pretrained == SELFSUP and runs_root is not None:
            return str(selfsup_dir(runs_root))
        return self.pretrained

    def config(self, profile: str, shared_overrides: dict | None = None, seed: int = 0, fraction: float = 1.0,
               runs_root=None) -> ExperimentConfig:
        """The validated ExperimentConfig of this cell under `profile`, trained with `seed` on `fraction` of
        each fold's training patients (a "selfsup" encoder from RUNS/pretraining/selfsup when runs_root is given)."""
        pretrained = self.pretrained_source(runs_root)
        cfg = profile_config(profile, self.arch, pretrained)
        if shared_overrides:
            cfg = apply_overrides(cfg, shared_overrides)
        cfg = apply_overrides(cfg, {"model": {"arch": self.arch, "pretrained": pretrained}, "loss": {"name": self.loss}})
        if self.overrides:
            cfg = apply_overrides(cfg, self.overrides)
        name = self.name_override
        tuned = self.tuned()
        if tuned is not None:

            if tuned.shared:
                cfg = apply_overrides(cfg, tuned.shared)
            name = name or tuned_name(cfg.name, tuned)
        if not self.learned:  # nothing to seed or to train on: one run stands for every seed and fraction
            seed, fraction = 0, 1.0
        if seed:
            cfg = apply_overrides(cfg, {"train": {"seed": seed}})
        if fraction < 1:
            cfg = apply_overrides(cfg, {"data": {"train_fraction": fraction}})
            name = fraction_name(name, fraction) if name else None
        if name:
            cfg = apply_overrides(cfg, {"name_override": seeded_name(name, cfg.train.seed)})
        return cfg.validate()

    @property
    def name(self) -> str:
        """The run folder name (the configuration's name)."""
        return self.config("quick").name

    def run_command(self, data, profile: str, runs_root, num_folds: int, fold="all", config_file=None,
                    seed: int = 0, fraction: float = 1.0, layout: str | None = None) -> str:
        """The exact `islesbench run ...` command line that runs this cell alone (the benchmark runs exactly
        this line in the cell's child process)."""
        parts = ["islesbench", "run", "--arch", self.arch]
        if self.pretrained:
            parts += ["--pretrained", str(self.pretrained_source(runs_root))]
        if self.arch != "threshold":
            parts += ["--loss", self.loss]
        parts += ["--data", str(data), "--profile", profile, "--out", str(runs_root)]
        parts += ["--folds", str(num_folds), "--fold", str(fold)]
        if not self.learned:
            seed, fraction = 0, 1.0
        if seed:  # `run --seed` (default 0) wins over train.seed of a --config file
            parts += ["--seed", str(seed)]
        if config_file:
            parts += ["--config", str(config_file)]
        if self.hparams:
            parts += ["--hparams", str(self.hparams)]
        if fraction < 1:
            parts += ["--train-fraction", f"{fraction:g}"]
        if self.name_override:
            parts += ["--name", fraction_name(self.name_override, fraction)]
        if layout:
            parts += ["--layout", layout]
        return " ".join(_quote(p) for p in parts)


@dataclass(frozen=True)
class EnsembleCell:
    """Average the validation probability maps of the top-k configurations by mean Dice."""

    top_k: int = 3
    name: str | None = None  # run folder; default ensemble-top<k>

    @property
    def run_name(self) -> str:
        """The ensemble's run folder name under the runs root."""
        return self.name or f"ensemble-top{self.top_k}"


@dataclass(frozen=True)
class Grid:
    """The cells to run, overrides shared by all of them, and the optional ensemble."""

    cells: tuple
    overrides: dict = field(default_factory=dict, compare=False, hash=False)
    ensemble: EnsembleCell | None = EnsembleCell()
    train_fractions: tuple = (1.0,)
    pretraining: PretrainingBlock | None = None

    def cell_configs(self, profile: str, seed: int = 0, runs_root=None) -> list[tuple[GridCell, ExperimentConfig]]:
        """(cell, its resolved config for training seed `seed`) in grid order, once per training fraction
        (largest first); a cell that learns nothing (the threshold rule) once, with seed 0 only."""
        return [(c, c.config(profile, self.overrides, seed, fraction, runs_root))
                for fraction in sorted(self.train_fractions, reverse=True) for c in self.cells
                if c.learned or (seed == 0 and fraction == max(self.train_fractions))]

    def uses_selfsup(self) -> bool:
        """True when a cell starts from the benchmark's own self-supervised pretraining."""
        return any(c.pretrained == SELFSUP for c in self.cells)

    def cell_overrides(self, cell: GridCell) -> dict:
        """The overrides a stand-alone `islesbench run --config FILE` needs to reproduce `cell` (the name
        travels as `--name`)."""
        return merge_overrides(self.overrides, cell.overrides)


def paper_grid() -> Grid:
    """The paper's grid: PSPNet imagenet/scratch, U-Net, V-Net × focal/CE, threshold, top-3 ensemble."""
    cells = []
    for arch, pretrained in (("pspnet", "imagenet"), ("pspnet", None), ("unet", None), ("vnet", None)):
        for loss in ("focal", "ce"):
            cells.append(GridCell(arch=arch, loss=loss, pretrained=pretrained))
    cells.append(GridCell(arch="threshold"))
    return Grid(cells=tuple(cells), ensemble=EnsembleCell(top_k=3))


def grid_from_dict(data: dict, source: str = "grid") -> Grid:
    """A validated Grid from a parsed grid file; every problem is listed in one IslesbenchError."""
    if not isinstance(data, dict):
        raise IslesbenchError(f"{source}: a grid file must hold a JSON object")
    problems = [f"unknown key {k!r} (known: {', '.join(sorted(_GRID_KEYS))})" for k in data if k not in _GRID_KEYS]
    default = paper_grid()
    shared = data.get("overrides", {})
    if not isinstance(shared, dict):
        problems.append("'overrides' must be an object")
        shared = {}

    cells = default.cells
    if "cells" in data:
        raw_cells = data["cells"]
        if not isinstance(raw_cells, list) or not raw_cells:
            problems.append("'cells' must be a non-empty list")
            raw_cells = []
        cells = []
        for i, raw in enumerate(raw_cells):
            cell, cell_problems = _parse_cell(raw, f"cells[{i}]")
            problems += cell_problems
            if cell is not None:
                cells.append(cell)
        cells = tuple(cells)

    names = {}
    for i, cell in enumerate(cells):
        try:
            name = cell.config("quick", shared).name
        except IslesbenchError as exc:
            problems.append(f"cells[{i}]: {exc}")
            continue
        if name in names:
            problems.append(
                f"cells[{i}] and cells[{names[name]}] are both named {name!r}; give one a distinct \"name\""
            )
        names.setdefault(name, i)

    ensemble = default.ensemble
    if "ensemble" in data:
        ensemble, ens_problems = _parse_ensemble(data["ensemble"])
        problems += ens_problems
        if ensemble is not None and ensemble.run_name in names:
            problems.append(f"ensemble name {ensemble.run_name!r} is also a cell's name")

    fractions = (1.0,)
    if "train_fractions" in data:
        try:
            fractions = tuple(parse_fractions(data["train_fractions"]))
        except ValueError as exc:
            problems.append(f"train_fractions must be a non-empty list of numbers in (0, 1]: {exc}")
    pretraining = None
    if "pretraining" in data and data["pretraining"] is not None:
        pretraining, block_problems = parse_pretraining(data["pretraining"])
        problems += block_problems
    if any(c.pretrained == SELFSUP for c in cells) and pretraining is None:
        problems.append(f"a cell has \"pretrained\": \"{SELFSUP}\" but the grid has no \"pretraining\" block")

    if problems:
        raise IslesbenchError(f"invalid grid {source}:\n  - " + "\n  - ".join(problems))
    return Grid(cells=cells, overrides=shared, ensemble=ensemble, train_fractions=fractions, pretraining=pretraining)


def load_grid(path=None) -> Grid:
    """The paper's grid, or the grid file at `path` (validated)."""
    if path is None:
        return paper_grid()
    return grid_from_dict(read_json_file(path, "grid file"), source=str(path))


def _parse_cell(raw, where: str) -> tuple[GridCell | None, list[str]]:
    if not isinstance(raw, dict):
        return None, [f"{where}: a cell must be an object such as {{\"arch\": \"unet\", \"loss\": \"ce\"}}"]
    problems = [f"{where}: unknown key {k!r} (known: {', '.join(sorted(_CELL_KEYS))})" for k in raw if k not in _CELL_KEYS]
    if "arch" not in raw:
        problems.append(f"{where}: 'arch' is required")
    overrides = raw.get("overrides", {})
    if not isinstance(overrides, dict):
        problems.append(f"{where}: 'overrides' must be an object")
        overrides = {}
    for key in ("arch", "loss", "pretrained", "name", "hparams"):
        if key in raw and raw[key] is not None and not isinstance(raw[key], str):
            problems.append(f"{where}: {key!r} must be a string")
    if problems:
        return None, problems
    cell = GridCell(
        arch=raw["arch"],
        loss=raw.get("loss", "focal"),
        pretrained=raw.get("pretrained") or None,
        overrides=overrides,
        name_override=raw.get("name") or None,
        hparams=raw.get("hparams") or None,
    )
    return cell, []


def _parse_ensemble(raw) -> tuple[EnsembleCell | None, list[str]]:
    if raw is None or raw is False:
        return None, []
    if not isinstance(raw, dict):
        return None, ["'ensemble' must be an object such as {\"top_k\": 3}, or null"]
    problems = [f"ensemble: unknown key {k!r} (known: {', '.join(sorted(_ENSEMBLE_KEYS))})" for k in raw if k not in _ENSEMBLE_KEYS]
    top_k = raw.get("top_k", 3)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 2:
        problems.append(f"ensemble.top_k must be an integer >= 2, not {top_k!r}")
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not name or "/" in name):
        problems.append(f"ensemble.name must be a plain folder name, not {name!r}")
    if problems:
        return None, problems
    return EnsembleCell(top_k=top_k, name=name), []


def merge_overrides(base: dict, extra: dict) -> dict:
    """`base` with `extra` merged in, nested sections key by key (neither is modified)."""
    out = json.loads(json.dumps(base))
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = value
    return out


def _quote(part: str) -> str:

    return shlex.quote(part)
