"""Load a trained model for segmenting ISLES-layout cases (`Predictor.load`), and a case's probability map in
its stored geometry (`probability_in_stored_geometry`); the `islesbench predict` command is
islesbench.commands.predict.

The model is a checkpoint (`.keras`, its fold folder's config.json and threshold.json are used when
present), a fold folder (its checkpoint_last), a run folder, whose finished folds' checkpoint_last models
are averaged (a fold ensemble), or an ensemble folder written by `islesbench ensemble` or `benchmark`,
whose member runs' fold models are averaged member by member and thresholded at the ensemble's threshold.
Inputs need no `OT`; maps come back with exactly the input's shape and voxel order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from islesbench.errors import IslesbenchError
from islesbench.imaging import preprocessing
from islesbench.inference import threshold_rule, volume
from islesbench.models import is_3d
from islesbench.models.saving import load_checkpoint
from islesbench.runtime import precision
from islesbench.storage import run_layout


def probability_in_stored_geometry(predictor, case) -> np.ndarray:
    """The predictor's probability map for a loaded case, in the case's stored shape and voxel order.

    The volumes go to the canonical orientation and, when the run's data were resampled to a slice
    spacing (config `slice_mm`), to that slice count, as prepare did; the map comes back the same way.
    """
    sampling = preprocessing.plan_sampling(case.shape, case.affine, case.spacing, predictor.grid,
                                           predictor.config.get("slice_mm"))
    canonical = {m: preprocessing.to_canonical_volume(v, sampling) for m, v in case.volumes.items()}
    prob = predictor.probability(canonical)
    return np.clip(preprocessing.from_canonical_volume(prob, sampling), 0.0, 1.0).astype(np.float32)


class Member:
    """One trained configuration: its fold models (averaged), the modalities and grid they were trained on."""

    def __init__(self, models, config: dict, source: Path, weight: int | None = None):
        self.models, self.config, self.source = models, config, source
        self.weight = weight if weight is not None else max(1, len(models))
        try:
            self.arch = config["model"]["arch"]
            self.modalities = (("CT_CBF", "CT") if self.arch == "threshold"
                               else tuple(config["data"]["modalities"]))
            self.grid = int(config.get("grid", 256))
        except (KeyError, TypeError, ValueError) as exc:
            raise IslesbenchError(f"{source}: not an islesbench run configuration (missing or bad {exc})") from None

    def probability(self, volumes: dict) -> np.ndarray:
        """Mean probability (X, Y, Z) of this member's models on one case's raw volumes."""
        if self.arch == "threshold":
            return threshold_rule.core_mask(volumes).astype(np.float32)
        return volume.predict_case_arrays(self.models, volumes, self.modalities, self.grid, is_3d(self.arch))


class Predictor:
    """A checkpoint, a run's fold ensemble, or an ensemble of runs, with the threshold their runs chose."""

    def __init__(self, members: list, threshold: float, description: str = ""):
        self.members, self.threshold, self.description = list(members), float(threshold), description
        first = self.members[0]
        # A single-member predictor looks like the model it holds (benchmarks read these).
        self.models, self.config, self.arch, self.grid = first.models, first.config, first.arch, first.grid
        self.modalities = tuple(dict.fromkeys(m for member in self.members for m in member.modalities))

    def set_precision(self, name: str) -> None:
        """Compute every model in `name` (train.precision's values) instead of its trained precision."""
        for member in self.members:
            member.models = [precision.with_precision(m, name) for m in member.models]
        self.models = self.members[0].models

    @classmethod
    def load(cls, model_path) -> "Predictor":
        """From a .keras checkpoint (beside its fold's config.json), a fold folder, a run folder (its
        finished folds) or an ensemble folder (its members' finished folds); anything else is refused."""
        path = Path(model_path)
        if path.is_file() and path.name.endswith(".keras"):
            return cls._from_checkpoint(path)
        config_file = path / "config.json"
        if path.is_dir() and config_file.is_file():
            config = run_layout.read_run_config(path)
            if config.get("model", {}).get("arch") == "ensemble":
                return cls._from_ensemble(path, config)
            if "fold" in config and (path / "checkpoint_last.keras").is_file():
                return cls._from_checkpoint(path / "checkpoint_last.keras")
            member, threshold = _run_member(path, config)
            return cls([member], threshold, f"run {path}")
        if not path.exists():
            raise IslesbenchError(f"--model {path} does not exist; {EXPECTED_MODEL}")
        raise IslesbenchError(f"--model {path} is not a model islesbench can use; {EXPECTED_MODEL}")

    @classmethod
    def _from_checkpoint(cls, path: Path) -> "Predictor":
        config_file = path.parent / "config.json"
        if not config_file.is_file():
            raise IslesbenchError(f"{path}: no config.json beside the checkpoint; predict needs the run's "
                                  "modalities and grid (pass the fold or run folder's checkpoint)")
        member = Member([load_checkpoint(path)], run_layout.read_run_config(path.parent), config_file)
        return cls([member], run_layout.read_threshold(path.parent / "threshold.json"), f"checkpoint {path}")

    @classmethod
    def _from_ensemble(cls, path: Path, config: dict) -> "Predictor":
        """Each finished ensemble fold k contributes its members' fold-k models (a nested selection may
        pick other members per fold); the threshold is the mean of the ensemble folds' thresholds."""
        folds = [(k, p) for k, p in run_layout.list_folds(path) if p.is_done()]
        if not folds:
            raise IslesbenchError(f"{path}: ensemble folder without a finished fold; re-run `islesbench ensemble` "
                                  "(or `benchmark`) to finish it")
        member_folds: dict = {}
        for k, fold in folds:
            fold_config = run_layout.read_run_config(fold.root) if fold.config.is_file() else config
            for run in _ensemble_member_runs(path, fold_config):
                member_fold = run_layout.FoldPaths(run / f"fold_{k}")
                if not member_fold.is_done():
                    raise IslesbenchError(f"{path}: its member {run} has no finished fold_{k} (moved or re-run?)")
                member_folds.setdefault(run, []).append(member_fold)
        members = []
        for run, fold_paths in member_folds.items():
            run_config = run_layout.read_run_config(run)
            models = ([] if run_config["model"].get("arch") == "threshold"
                      else [load_checkpoint(f.checkpoint_last) for f in fold_paths])
            members.append(Member(models, run_config, run / "config.json", weight=len(fold_paths)))
        threshold = float(np.mean([run_layout.read_threshold(f.threshold_json) for _, f in folds]))
        return cls(members, threshold, f"ensemble {path} of {len(members)} run(s)")

    def probability(self, volumes: dict) -> np.ndarray:
        """Mean probability (X, Y, Z) over the members on one case's raw volumes."""
        probs = [m.probability({k: volumes[k] for k in m.modalities if k in volumes}) for m in self.members]
        if len(probs) == 1:
            return probs[0]
        # every (member, fold) model counts once, as the ensemble's validation averaged them per fold
        return np.average(probs, axis=0, weights=[m.weight for m in self.members]).astype(np.float32)


EXPECTED_MODEL = ("expected a .keras checkpoint, a fold folder, a run folder (RUNS/<name> with config.json "
                  "and finished fold_<k>) or an ensemble folder written by `islesbench ensemble` or `benchmark`")


def _run_member(run: Path, config: dict) -> tuple:
    """(Member of a run's finished folds, mean of their thresholds)."""
    folds = [p for _, p in run_layout.list_folds(run) if p.is_done()]
    if not folds:
        raise IslesbenchError(f"{run}: no finished fold to predict with; finish the run first "
                              "(re-run the same `islesbench run` command)")
    if config.get("model", {}).get("arch") == "threshold":
        return Member([], config, run / "config.json"), 0.5
    models = [load_checkpoint(p.checkpoint_last) for p in folds]
    thresholds = [run_layout.read_threshold(p.threshold_json) for p in folds]
    return Member(models, config, run / "config.json"), float(np.mean(thresholds))


def _ensemble_member_runs(path: Path, config: dict) -> list:
    """The member run folders of an ensemble: where they were, or beside the ensemble (a moved runs folder)."""
    names, recorded = config.get("members"), config.get("member_runs")
    if not isinstance(names, list) or not names:
        raise IslesbenchError(f"{path / 'config.json'}: ensemble without a `members` list")
    recorded = recorded if isinstance(recorded, list) and len(recorded) == len(names) else [None] * len(names)
    runs = []
    for name, where in zip(names, recorded):
        candidates = [Path(where)] if where else []
        candidates.append(path.parent / str(name))
        found = next((c for c in candidates if (c / "config.json").is_file()), None)
        if found is None:
            raise IslesbenchError(f"{path}: member run {name} not found (looked in "
                                  + " and ".join(str(c) for c in candidates) + ")")
        runs.append(found)
    return runs
