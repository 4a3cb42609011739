"""Tuned hyperparameters as a run takes them: `islesbench run --hparams FILE|DIR`.

`islesbench tune` writes `best_hparams.json` (its `config_overrides`, and since nested tuning its
`outer_fold` and `outer_val` cases). A run takes either:

- one file from a search over the same folds that are then scored (`outer_fold` null): the tuned row is
  optimistic against untuned rows, so the run is named `<name>-tuned-nonnested` and every table flags it;
- a folder of nested searches, `DIR/outer_fold_<k>/best_hparams.json`, one per outer fold k, each made
  on fold k's training patients only (`tune --outer-fold k --out DIR`): fold k trains with its own
  search's choice and the row (`<name>-tuned`) is leak-free;
- one nested file: only the outer fold it was made for can use it.

Whichever form, a search is taken only for the run it was made for: the same arch, loss and profile, and
the same prepared data (`prepared_data`, islesbench.storage.manifest.PreparedData.data_fingerprint: grid,
slice spacing, channels and every case's content, wherever it lies; searches recorded before it was
written are compared by cohort label), and, nested, the same outer validation cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from islesbench.config import ExperimentConfig, apply_overrides, read_json_file
from islesbench.errors import IslesbenchError

BEST_HPARAMS = "best_hparams.json"
OUTER_FOLD_DIR = "outer_fold_{k}"


def outer_fold_dir(root, k: int) -> Path:
    """Where `tune --outer-fold k --out ROOT` writes its search."""
    return Path(root) / OUTER_FOLD_DIR.format(k=k)


@dataclass
class TunedHparams:
    """Hyperparameters from `islesbench tune`: shared by every fold, or per outer fold (nested)."""

    source: str
    nested: bool
    shared: dict | None = None  # config_overrides of a single search
    per_fold: dict = field(default_factory=dict)  # outer fold -> config_overrides (nested)
    outer_val: dict = field(default_factory=dict)  # outer fold -> the validation cases its search left out
    searches: dict = field(default_factory=dict)  # outer fold (None: the single search) -> (file, its record)

    def check_folds(self, fold_ids, splits=None, config: ExperimentConfig | None = None, prepared=None) -> None:
        """Refuse folds that have no nested search, a search made for a different split, and a search made for
        another arch, loss, profile or prepared data than `config` on `prepared`."""
        if config is not None:
            for k in ([None] if not self.nested else [k for k in fold_ids if k in self.searches]):
                _check_search(*self.searches[k], config, prepared)
        if not self.nested:
            return
        missing = [k for k in fold_ids if k not in self.per_fold]
        if missing:
            raise IslesbenchError(
                f"{self.source}: no nested search for outer fold(s) {missing} (run `islesbench tune --outer-fold "
                f"K --out {self.source}` for each, or pass a single non-nested best_hparams.json)")
        if splits is not None:
            for k in fold_ids:
                if k in self.outer_val and sorted(self.outer_val[k]) != sorted(splits[k]["val"]):
                    raise IslesbenchError(f"{self.source}: the search for outer fold {k} left out other validation "
                                          "cases than this split's fold (made on other folds)")

    def fold_config(self, config: ExperimentConfig, k: int) -> ExperimentConfig:
        """The configuration fold k trains: the run's, with its own nested search's choice."""
        if not self.nested:
            return config
        return apply_overrides(config, self.per_fold[k]).validate()

    def provenance(self) -> dict:
        """What config.json records about where the hyperparameters came from."""
        return {"source": self.source, "nested": self.nested,
                "per_fold": {str(k): v for k, v in self.per_fold.items()} if self.nested else None,
                "overrides": self.shared}


def _check_search(path, record: dict, config: ExperimentConfig, prepared) -> None:
    """Refuse a search (`best_hparams.json` at `path`) made for another configuration or data than the run's."""
    wanted = {"arch": config.model.arch, "loss": config.loss.name, "profile": config.profile}
    differ = [f"{key} {record[key]!r}, this run's {value!r}" for key, value in wanted.items()
              if record.get(key) is not None and record[key] != value]
    if prepared is not None:
        if record.get("prepared_data") is not None:
            if record["prepared_data"] != prepared.data_fingerprint():
                differ.append(f"prepared data {record['prepared_data']}, this run's {prepared.data_fingerprint()} "
                              "(other cases, grid, slice spacing or channels)")
        elif record.get("cohort") is not None and record["cohort"] != prepared.cohort_label:
            differ.append(f"cohort {record['cohort']!r}, this run's {prepared.cohort_label!r}")
    if differ:
        raise IslesbenchError(f"{path}: a search made for another run ({'; '.join(differ)}); tune this configuration "
                              "on this data, or leave --hparams out")


def tuned_name(name: str, tuned: TunedHparams) -> str:
    """The run name of a tuned configuration: it says whether the tuning was nested."""
    return f"{name}-tuned" if tuned.nested else f"{name}-tuned-nonnested"


def read_tuned_hparams(path) -> TunedHparams:
    """A best_hparams.json, or a folder of nested searches (outer_fold_<k>/best_hparams.json)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob(OUTER_FOLD_DIR.format(k="*") + "/" + BEST_HPARAMS))
        if not files:
            direct = path / BEST_HPARAMS
            if direct.is_file():
                return read_tuned_hparams(direct)
            raise IslesbenchError(f"{path}: no {BEST_HPARAMS} and no outer_fold_<k>/{BEST_HPARAMS}")
        tuned = TunedHparams(source=str(path), nested=True)
        for f in files:
            record = _read_record(f)
            k = record.get("outer_fold")
            if k is None or f.parent.name != OUTER_FOLD_DIR.format(k=k):
                raise IslesbenchError(f"{f}: not the nested search of {f.parent.name} (outer_fold is {k})")
            tuned.per_fold[int(k)] = record["config_overrides"]
            tuned.outer_val[int(k)] = list(record.get("outer_val") or [])
            tuned.searches[int(k)] = (f, record)
        return tuned
    record = _read_record(path)
    k = record.get("outer_fold")
    if k is None:
        return TunedHparams(source=str(path), nested=False, shared=record["config_overrides"],
                            searches={None: (path, record)})
    return TunedHparams(source=str(path), nested=True, per_fold={int(k): record["config_overrides"]},
                        outer_val={int(k): list(record.get("outer_val") or [])}, searches={int(k): (path, record)})


def _read_record(path) -> dict:
    record = read_json_file(path, "tuning result")
    if not isinstance(record, dict) or not isinstance(record.get("config_overrides"), dict):
        raise IslesbenchError(f"{path}: not an `islesbench tune` result (no config_overrides)")
    return record
