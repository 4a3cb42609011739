"""The prepared-data layout: `manifest.json`, `splits.json` and the record files beside them.

    PREP/manifest.json            schema version, manifest version, source, layout, grid, slice spacing,
                                  modalities, normalisation, per-case entries (with each case's sampling)
    PREP/splits.json              K folds grouped by patient: [{"train": [...], "val": [...]}, ...] (editable)
    PREP/patients.json            case -> patient grouping used for the folds, and how it was found
    PREP/records/<case>.slices.tfrecord, <case>.volume.tfrecord, <case>.json (per-case entry, written last)

No other module builds these paths or reads these files directly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from islesbench.atomic import write_json_atomic
from islesbench.config import read_json_file
from islesbench.errors import IslesbenchError
from islesbench.storage import records

# islesbench.imaging.preprocessing (SciPy) imported inside functions only, so that `islesbench --help` and start-up stay fast.

MANIFEST = "manifest.json"
SPLITS = "splits.json"
PATIENTS = "patients.json"
RECORDS_DIR = "records"
# The manifest's own fields, versioned apart from the records' schema (records.SCHEMA_VERSION):
# 1 = no `layout`, `slice_mm` or per-case `sampling` (stored voxel order taken as canonical, no slice
#     resampled); 2 = those fields. A version-1 manifest is read as what it was written as.
MANIFEST_VERSION = 2
READABLE_MANIFEST_VERSIONS = (1, 2)


@dataclass(frozen=True)
class PreparedPaths:
    """Paths inside one prepared directory."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def splits(self) -> Path:
        return self.root / SPLITS

    @property
    def patients(self) -> Path:
        return self.root / PATIENTS

    @property
    def records_dir(self) -> Path:
        return self.root / RECORDS_DIR

    def slices_file(self, case_id: str) -> Path:
        return self.records_dir / f"{case_id}{records.SLICES_SUFFIX}"

    def volume_file(self, case_id: str) -> Path:
        return self.records_dir / f"{case_id}{records.VOLUME_SUFFIX}"

    def case_entry_file(self, case_id: str) -> Path:
        return self.records_dir / f"{case_id}.json"


def is_prepared_dir(path) -> bool:
    """True when `path` holds a manifest.json (as opposed to a raw ISLES-layout cohort)."""
    return (Path(path) / MANIFEST).is_file()


class PreparedData:
    """A prepared directory, read: manifest, splits and per-case entries."""

    def __init__(self, root):
        self.paths = PreparedPaths(Path(root))
        if not self.paths.manifest.is_file():
            raise IslesbenchError(f"{root}: no {MANIFEST}; run `islesbench prepare --data RAW --out {root}`")
        self.manifest = read_json_file(self.paths.manifest, "prepared-data manifest")
        if not (isinstance(self.manifest, dict) and isinstance(self.manifest.get("cases"), list)
                and all(isinstance(c, dict) and "case_id" in c for c in self.manifest["cases"])
                and isinstance(self.manifest.get("modalities"), list) and "grid" in self.manifest):
            raise IslesbenchError(f"{self.paths.manifest}: not an islesbench manifest (expected an object with "
                                  "cases, modalities and grid); re-run `islesbench prepare`")
        version = self.manifest.get("schema_version")
        if version != records.SCHEMA_VERSION:
            raise IslesbenchError(
                f"{self.paths.manifest}: prepared with schema version {version}, this islesbench reads "
                f"version {records.SCHEMA_VERSION}; re-run `islesbench prepare`")
        manifest_version = self.manifest.get("manifest_version", 1)
        if manifest_version not in READABLE_MANIFEST_VERSIONS:
            raise IslesbenchError(
                f"{self.paths.manifest}: manifest version {manifest_version}, this islesbench reads "
                f"{', '.join(map(str, READABLE_MANIFEST_VERSIONS))}; re-run `islesbench prepare`")
        self.cases = {c["case_id"]: c for c in self.manifest["cases"]}

    @property
    def root(self) -> Path:
        return self.paths.root

    @property
    def modalities(self) -> list:
        return list(self.manifest["modalities"])

    @property
    def grid(self) -> int:
        return int(self.manifest["grid"])

    @property
    def layout(self) -> str:
        """The raw cohort's layout (`isles2018` for manifests written before layouts were recorded)."""
        return self.manifest.get("layout", "isles2018")

    @property
    def slice_mm(self) -> float | None:
        """The slice spacing cases were resampled to (None: every slice kept)."""
        return self.manifest.get("slice_mm")

    @property
    def cohort_label(self) -> str:
        return self.manifest.get("cohort", "unknown")

    def case_ids(self, split: str | None = "TRAINING") -> list:
        return [c for c, e in self.cases.items() if split is None or e["split"] == split]

    def splits(self) -> list:
        """The folds: list of {"train": [...], "val": [...]}, checked against the manifest."""
        if not self.paths.splits.is_file():
            raise IslesbenchError(f"{self.paths.splits} is missing; re-run `islesbench prepare`")
        data = read_json_file(self.paths.splits, "splits file")
        folds = data.get("folds") if isinstance(data, dict) else None
        if not (isinstance(folds, list) and all(isinstance(f, dict) and isinstance(f.get("train"), list)
                                                and isinstance(f.get("val"), list) for f in folds)):
            raise IslesbenchError(f"{self.paths.splits}: expected {{\"folds\": [{{\"train\": [...], \"val\": [...]}}, ...]}}; "
                                  "fix it, or delete it and re-run `islesbench prepare`")
        known = set(self.cases)
        for k, fold in enumerate(folds):
            unknown = sorted((set(fold["train"]) | set(fold["val"])) - known)
            if unknown:
                raise IslesbenchError(f"{self.paths.splits}: fold {k} names cases not in the manifest: {unknown}")
            overlap = sorted(set(fold["train"]) & set(fold["val"]))
            if overlap:
                raise IslesbenchError(f"{self.paths.splits}: fold {k} has cases in both train and val: {overlap}")
        if self.paths.patients.is_file():
            check_folds_by_patient(folds, self.patients(), self.paths.splits)
        return folds

    def patient_of(self) -> dict:
        """case -> patient where prepare recorded patients.json; empty (each case its own patient) otherwise."""
        return self.patients() if self.paths.patients.is_file() else {}

    def patients(self) -> dict:
        """case -> patient, as `prepare` recorded it in patients.json."""
        data = read_json_file(self.paths.patients, "patients file")
        if not isinstance(data, dict) or not isinstance(data.get("patients"), dict):
            raise IslesbenchError(f"{self.paths.patients}: expected {{\"patients\": {{case: patient}}}}; "
                                  "re-run `islesbench prepare`")
        return dict(data["patients"])

    def patient_record(self) -> dict:
        """The patient map as a run keeps it (run_layout.write_patient_map): patients.json's case -> patient and
        method, and the file it came from; without a patients.json, every case its own patient, said so."""
        if not self.paths.patients.is_file():
            return {"method": f"none: {self.paths.patients} does not exist, so every case is its own patient",
                    "patients": {}, "copied_from": None}
        data = read_json_file(self.paths.patients, "patients file")
        return {"method": data.get("method"), "patients": self.patients(), "copied_from": str(self.paths.patients)}

    def case_fingerprints(self, case_ids=None) -> dict:
        """case -> `case_content_fingerprint` of the given cases (default: every case)."""
        return {c: case_content_fingerprint(self.cases[c]) for c in (self.cases if case_ids is None else case_ids)}

    def data_fingerprint(self) -> str:
        """What a run trains and validates on, independent of where it lies: the grid, slice spacing,
        channels and every case's content fingerprint (a copy prepared alike has the same)."""
        return fingerprint([self.grid, self.slice_mm, self.modalities, self.case_fingerprints()])

    def slice_files(self, case_ids) -> list:
        return [str(self.paths.slices_file(c)) for c in case_ids]

    def volume_files(self, case_ids) -> list:
        return [str(self.paths.volume_file(c)) for c in case_ids]


def check_folds_by_patient(folds: list, patient_of: dict, source) -> None:
    """Refuse folds in which one patient has a case in training and another in validation."""
    for k, fold in enumerate(folds):
        val_patients = {patient_of.get(c, c) for c in fold["val"]}
        leaked = sorted(c for c in fold["train"] if patient_of.get(c, c) in val_patients)
        if leaked:
            patient = patient_of.get(leaked[0], leaked[0])
            raise IslesbenchError(
                f"{source}: fold {k} puts patient {patient} in training ({', '.join(leaked)}) and validation; "
                "a patient's slabs must share a fold (edit the file or delete it and re-run `islesbench prepare`)")


def fingerprint(data) -> str:
    """A short, stable hash of JSON-able data (to tell whether splits.json was generated from it)."""

    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# The fields of a case entry that come from its images, not from where they lie or how they were gridded.
CASE_CONTENT_FIELDS = ("shape", "spacing", "affine", "normalization")


def case_content_fingerprint(entry: dict) -> str:
    """What identifies a case's images across copies and paths: its native shape, spacing and affine and its
    per-case intensity statistics (`normalization`: brain medians of the perfusion maps). A copy of a cohort
    under another path, prepared on another grid, has the same; another case, even under the same name, not."""
    return fingerprint({k: entry.get(k) for k in CASE_CONTENT_FIELDS})


def case_geometry(entry: dict):
    """How to map a case's grid output back: its preprocessing.Sampling, or (version-1 manifests) its shape."""
    if "sampling" in entry:
        from islesbench.imaging.preprocessing import Sampling

        return Sampling.from_json(entry["sampling"])
    return tuple(entry["shape"])


def write_splits(paths: PreparedPaths, folds: list, seed: int, method: str, patients: dict | None = None) -> None:
    """Write splits.json (nnU-Net's splits_final.json) with the seed, method and what it was made from.

    `patients_fingerprint` and `folds_fingerprint` let `prepare` tell a stale split (seed or patient
    mapping changed) from one a user edited on purpose.
    """
    record = {"seed": seed, "method": method, "folds": folds, "folds_fingerprint": fingerprint(folds)}
    if patients is not None:
        record["patients_fingerprint"] = fingerprint(patients)
    write_json_atomic(paths.splits, record)


def write_manifest(paths: PreparedPaths, manifest: dict) -> None:
    """Write manifest.json atomically."""
    write_json_atomic(paths.manifest, manifest)
