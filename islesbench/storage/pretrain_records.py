"""Self-supervised pretraining outputs on disk, and how a run takes them (`run --pretrained FILE|DIR`).

`islesbench pretrain --out DIR` writes (this module owns the layout; islesbench/selfsup/pretrain.py trains):

    DIR/fold_<k>.keras        with --exclude-fold k: pretrained without fold k's validation patients
    DIR/<DIR name>.keras      without --exclude-fold: pretrained on every case given
    DIR/fold_<k>/ or DIR/all/ the state of that pretraining: pretrain.json (configuration, every cohort and
                              case it read, the patients it left out, provenance), history.csv,
                              progress.png, logs/ (TensorBoard), backup/ (resume), DONE
    DIR/prepared/<i>-<name>/  raw cohorts given as --data, prepared once and reused

A `.keras` file is an encoder–decoder model (islesbench/models/restoration.py) whose encoder layers carry
PSPNet's names: `--pretrained FILE` copies them (islesbench/models/pretrained.py). `--pretrained DIR`
is the per-fold form: fold k fine-tunes from DIR/fold_<k>.keras, which never saw fold k's validation
patients; a fold without its file, or whose file saw them, is refused. (The same idea as `--hparams DIR`
with nested searches, islesbench/training/hparams.py.) A single file that saw a run's validation cases (images
only) is allowed but recorded in the run's config.json, and the report flags the row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from islesbench.config import read_json_file
from islesbench.errors import IslesbenchError
from islesbench.storage.run_layout import FoldPaths

RECORD = "pretrain.json"
METHOD = "models-genesis"
ALL_STATE = "all"
FOLD_FILE = re.compile(r"^fold_(\d+)\.keras$")


@dataclass(frozen=True)
class PretrainPaths:
    """Every path of one pretraining output folder."""

    root: Path

    def output(self, fold: int | None) -> Path:
        """The weights file: fold_<k>.keras, or <DIR name>.keras when nothing was left out."""
        return self.root / (f"fold_{fold}.keras" if fold is not None else f"{self.root.name}.keras")

    def state(self, fold: int | None) -> FoldPaths:
        """The pretraining's working folder, in the results layout's fold form (history, progress, backup)."""
        return FoldPaths(self.root / (f"fold_{fold}" if fold is not None else ALL_STATE))

    def record(self, fold: int | None) -> Path:
        return self.state(fold).root / RECORD

    def prepared(self, index: int, name: str) -> Path:
        """Where a raw cohort given as the index-th --data is prepared."""
        return self.root / "prepared" / f"{index}-{name}"


def paths_of_output(weights) -> tuple[PretrainPaths, int | None] | None:
    """(PretrainPaths, fold) of a weights file written by `islesbench pretrain`, or None for any other file."""
    weights = Path(weights)
    paths = PretrainPaths(weights.parent)
    m = FOLD_FILE.match(weights.name)
    fold = int(m.group(1)) if m else None
    if fold is None and weights.name != f"{weights.parent.name}.keras":
        return None
    return (paths, fold) if paths.record(fold).is_file() else None


def read_record(weights) -> dict | None:
    """The pretrain.json of a weights file written by `islesbench pretrain` (None for other files)."""
    found = paths_of_output(weights)
    if found is None:
        return None
    paths, fold = found
    record = read_json_file(paths.record(fold), "pretraining record")
    if not isinstance(record, dict) or record.get("method") is None or not isinstance(record.get("cohorts"), list):
        raise IslesbenchError(f"{paths.record(fold)}: not an `islesbench pretrain` record (no method or cohorts)")
    return record


def cohort_key(prepared) -> str:
    """What identifies a cohort across prepared copies: its raw source folder (resolved)."""
    source = prepared.manifest.get("source")
    return str(Path(source).resolve()) if source else str(prepared.root.resolve())


def seen_cases(record: dict, key: str) -> set:
    """The cases of cohort `key` whose images a pretraining read."""
    return {c for cohort in record["cohorts"] if cohort.get("key") == key for c in cohort.get("cases", [])}


@dataclass
class PretrainedEncoder:
    """Where a run's encoder comes from when it is an islesbench checkpoint: one file, or per fold."""

    source: str
    per_fold: bool
    files: dict = field(default_factory=dict)  # fold -> weights file (per fold); None -> the single file
    records: dict = field(default_factory=dict)  # same keys -> pretrain.json, or None for a plain checkpoint

    def fold_source(self, k: int) -> str:
        """The weights file fold k fine-tunes from."""
        return str(self.files[k] if self.per_fold else self.files[None])

    def check_folds(self, fold_ids, splits, prepared, encoder_width: float) -> None:
        """Refuse a fold without its per-fold file, a per-fold file that saw the fold's validation cases,
        and a pretraining of another encoder width than the run's."""
        if self.per_fold:
            missing = [k for k in fold_ids if k not in self.files]
            if missing:
                raise IslesbenchError(
                    f"--pretrained {self.source}: no fold_<k>.keras for fold(s) {missing} (run `islesbench pretrain "
                    f"--data ... --exclude-fold K --out {self.source}` for each)")
        key = cohort_key(prepared)
        for k in fold_ids:
            record = self.records.get(k if self.per_fold else None)
            if not record:
                continue
            width = (record.get("config") or {}).get("encoder_width")
            if width is not None and float(width) != float(encoder_width):
                raise IslesbenchError(
                    f"--pretrained {self.fold_source(k)}: pretrained at encoder width {width}, this run's "
                    f"model.encoder_width is {encoder_width} (pretrain and fine-tune with the same --profile)")
            leaked = sorted(seen_cases(record, key) & set(splits[k]["val"]))
            if leaked and self.per_fold:
                raise IslesbenchError(
                    f"--pretrained {self.fold_source(k)}: its pretraining read {len(leaked)} of fold {k}'s validation "
                    f"cases ({', '.join(leaked[:3])}{', ...' if len(leaked) > 3 else ''}); pretrain it with "
                    "--exclude-fold on this cohort's folds")

    def provenance(self, fold_ids, splits, prepared) -> dict:
        """What config.json records: the source, per fold what it was pretrained on, and what it saw."""
        key = cohort_key(prepared)
        per_fold = {}
        for k in fold_ids:
            record = self.records.get(k if self.per_fold else None)
            entry = {"file": self.fold_source(k)}
            if record:
                entry.update(summarize_record(record))
                entry["saw_validation_cases"] = len(seen_cases(record, key) & set(splits[k]["val"]))
            else:
                entry["record"] = "none (not written by islesbench pretrain): what it saw is unknown"
            per_fold[str(k)] = entry
        methods = sorted({str(r.get("method")) for r in self.records.values() if r})
        return {"source": self.source, "per_fold": self.per_fold, "method": methods[0] if len(methods) == 1 else
                (methods or None), "folds": per_fold}


def summarize_record(record: dict) -> dict:
    """A pretraining record in a few fields: method, schedule, cohorts (cases, fingerprints), what was left out."""
    config = record.get("config") or {}
    return {"method": record.get("method"),
            "epochs": config.get("epochs"), "steps_per_epoch": config.get("steps_per_epoch"),
            "encoder_width": config.get("encoder_width"), "input_size": config.get("input_size"),
            "seed": config.get("seed"),
            "cohorts": [{k: c.get(k) for k in ("cohort", "source", "prepared", "n_cases", "n_slices",
                                                "cases_fingerprint")} for c in record["cohorts"]],
            "excluded": record.get("excluded"),
            "seconds": record.get("seconds")}


def read_pretrained(value) -> PretrainedEncoder | None:
    """The islesbench checkpoint(s) a --pretrained value names, or None (scratch, imagenet, a .h5 file)."""
    if not value or value == "imagenet" or str(value).endswith((".h5", ".hdf5")):
        return None
    path = Path(str(value)).expanduser()
    if path.is_dir():
        files = {int(m.group(1)): p for p in sorted(path.iterdir()) if (m := FOLD_FILE.match(p.name))}
        if not files:
            raise IslesbenchError(f"--pretrained {value}: a folder, but it holds no fold_<k>.keras "
                                  "(`islesbench pretrain --exclude-fold K --out DIR` writes them)")
        return PretrainedEncoder(str(value), True, files, {k: read_record(p) for k, p in files.items()})
    if path.suffix == ".keras":
        if not path.is_file():
            raise IslesbenchError(f"--pretrained {value}: no such file")
        return PretrainedEncoder(str(value), False, {None: path}, {None: read_record(path)})
    return None
