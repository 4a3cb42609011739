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

A record counts only when it is tied to the weights: pretrain.json stores the sha256 of the weights file
it describes (`weights_sha256`), and a record is taken for a file only when that hash matches, whether it
is found by the file's name or, for a renamed copy in the same folder, by its hash. Anything else (a copy
elsewhere, a folder without its pretrain.json, a record of other weights) is "unknown": what the encoder
saw cannot be checked, so the per-fold form refuses it and a single file is allowed but flagged. Which
cases a pretraining read is matched to the fine-tuning cohort by content (the record's per-case
`case_fingerprints`, islesbench.storage.manifest.case_content_fingerprint), not only by path, so a copy
of the fine-tuning cohort under another path is recognised.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from islesbench.config import read_json_file
from islesbench.errors import IslesbenchError
from islesbench.storage.manifest import case_content_fingerprint
from islesbench.storage.run_layout import FoldPaths

RECORD = "pretrain.json"
METHOD = "models-genesis"
ALL_STATE = "all"
FOLD_FILE = re.compile(r"^fold_(\d+)\.keras$")
# The leak status of a fold's encoder, as config.json records it (`PretrainedEncoder.provenance`).
LEAK_NONE, LEAK_SAW_VALIDATION, LEAK_UNKNOWN = "none", "saw validation cases", "unknown"


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
    """The pretrain.json of a weights file written by `islesbench pretrain`, found by the file's name (None for
    other files); whether it describes these weights is `tied_record`'s question."""
    found = paths_of_output(weights)
    if found is None:
        return None
    paths, fold = found
    return _checked_record(paths.record(fold))


def _checked_record(path: Path) -> dict:
    record = read_json_file(path, "pretraining record")
    if not isinstance(record, dict) or record.get("method") is None or not isinstance(record.get("cohorts"), list):
        raise IslesbenchError(f"{path}: not an `islesbench pretrain` record (no method or cohorts)")
    return record


def weights_sha256(path) -> str:
    """The sha256 of a weights file (hex), read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tied_record(weights) -> tuple[dict | None, str | None]:
    """(the pretrain.json whose `weights_sha256` is this file's, None) or (None, why what it saw is unknown).

    Found by the file's name first, then among the records of its folder (a renamed copy beside them).
    """
    weights = Path(weights)
    digest = weights_sha256(weights)
    record = read_record(weights)
    if record is not None:
        if record.get("weights_sha256") == digest:
            return record, None
        if not record.get("weights_sha256"):
            return None, ("its pretrain.json records no weights hash (written before records were tied to their "
                          "weights; run the same `islesbench pretrain` command again to add it)")
    for path in sorted(weights.parent.glob(f"*/{RECORD}")):
        try:
            other = _checked_record(path)
        except IslesbenchError:
            continue
        if other.get("weights_sha256") == digest:
            return other, None
    if record is not None:
        return None, "its sha256 differs from the one its pretrain.json records (the record describes other weights)"
    return None, (f"no {RECORD} describes it (its sha256 matches no record beside it: a renamed or moved copy, a "
                  "folder without its records, or not written by `islesbench pretrain`)")


def cohort_key(prepared) -> str:
    """What identifies a cohort across prepared copies: its raw source folder (resolved)."""
    source = prepared.manifest.get("source")
    return str(Path(source).resolve()) if source else str(prepared.root.resolve())


def seen_cases(record: dict, key: str) -> set:
    """The cases of cohort `key` whose images a pretraining read (matched by path)."""
    return {c for cohort in record["cohorts"] if cohort.get("key") == key for c in cohort.get("cases", [])}


def leaked_cases(record: dict, prepared, case_ids) -> list:
    """Which of `prepared`'s `case_ids` a pretraining read: by cohort path, and by content (a case whose
    content fingerprint is among those the record read, under any path or name)."""
    wanted = set(case_ids)
    leaked = seen_cases(record, cohort_key(prepared)) & wanted
    read = {fp for cohort in record.get("case_fingerprints") or [] for fp in (cohort or {}).values()}
    leaked |= {c for c in wanted if case_content_fingerprint(prepared.cases[c]) in read}
    return sorted(leaked)


@dataclass
class PretrainedEncoder:
    """Where a run's encoder comes from when it is an islesbench checkpoint: one file, or per fold."""

    source: str
    per_fold: bool
    files: dict = field(default_factory=dict)  # fold -> weights file (per fold); None -> the single file
    records: dict = field(default_factory=dict)  # same keys -> the pretrain.json tied to the file, or None
    unknown: dict = field(default_factory=dict)  # same keys -> why no record is tied to the file

    def fold_source(self, k: int) -> str:
        """The weights file fold k fine-tunes from."""
        return str(self.files[k] if self.per_fold else self.files[None])

    def _key(self, k: int):
        return k if self.per_fold else None

    def check_folds(self, fold_ids, splits, prepared, encoder_width: float) -> None:
        """Refuse a fold without its per-fold file, a per-fold file that saw the fold's validation cases or whose
        record is unknown, and a pretraining of another encoder width than the run's."""
        if self.per_fold:
            missing = [k for k in fold_ids if k not in self.files]
            if missing:
                raise IslesbenchError(
                    f"--pretrained {self.source}: no fold_<k>.keras for fold(s) {missing} (run `islesbench pretrain "
                    f"--data ... --exclude-fold K --out {self.source}` for each)")
        for k in fold_ids:
            record = self.records.get(self._key(k))
            if not record:
                if self.per_fold:
                    raise IslesbenchError(
                        f"--pretrained {self.fold_source(k)}: what its pretraining read is unknown: "
                        f"{self.unknown.get(k)}; a per-fold encoder must come with its own record (pass the whole "
                        "`islesbench pretrain --out` folder)")
                continue
            width = (record.get("config") or {}).get("encoder_width")
            if width is not None and float(width) != float(encoder_width):
                raise IslesbenchError(
                    f"--pretrained {self.fold_source(k)}: pretrained at encoder width {width}, this run's "
                    f"model.encoder_width is {encoder_width} (pretrain and fine-tune with the same --profile)")
            leaked = leaked_cases(record, prepared, splits[k]["val"])
            if leaked and self.per_fold:
                raise IslesbenchError(
                    f"--pretrained {self.fold_source(k)}: its pretraining read {len(leaked)} of fold {k}'s validation "
                    f"cases ({', '.join(leaked[:3])}{', ...' if len(leaked) > 3 else ''}); pretrain it with "
                    "--exclude-fold on this cohort's folds")

    def provenance(self, fold_ids, splits, prepared) -> dict:
        """What config.json records: the source, per fold what it was pretrained on, what it saw (`leak`: none,
        saw validation cases, or unknown when no record is tied to the weights)."""
        per_fold = {}
        for k in fold_ids:
            record = self.records.get(self._key(k))
            entry = {"file": self.fold_source(k)}
            if record:
                entry.update(summarize_record(record))
                seen = len(leaked_cases(record, prepared, splits[k]["val"]))
                entry["saw_validation_cases"] = seen
                entry["leak"] = LEAK_SAW_VALIDATION if seen else LEAK_NONE
                entry["weights_sha256"] = record.get("weights_sha256")
            else:
                entry["record"] = f"unknown: {self.unknown.get(self._key(k))}"
                entry["saw_validation_cases"] = None
                entry["leak"] = LEAK_UNKNOWN
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
        encoder = PretrainedEncoder(str(value), True, files)
    elif path.suffix == ".keras":
        if not path.is_file():
            raise IslesbenchError(f"--pretrained {value}: no such file")
        encoder = PretrainedEncoder(str(value), False, {None: path})
    else:
        return None
    for key, weights in encoder.files.items():
        encoder.records[key], why = tied_record(weights)
        if why:
            encoder.unknown[key] = why
    return encoder
