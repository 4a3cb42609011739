"""Exporting prepared data as an nnU-Net v2 raw dataset on islesbench's folds (`export_nnunet`; the
`islesbench export` command is islesbench.commands.export).

The images are the cohort's own files, read through islesbench.layouts (so every case is checked as
`prepare` checks it) and written in their input geometry and stored voxel order: nnU-Net resamples and
reorients itself. Every file of a case gets the case's reference affine (its first channel's; the
channels agree within islesbench's tolerance), so nnU-Net's integrity check sees one geometry per case.
The folds are the prepared data's splits.json (islesbench.storage.manifest owns them), written as
nnU-Net's splits_final.json. The names and dataset.json are islesbench.storage.nnunet_dataset's.

Re-running is idempotent: a case whose source files (name, size, modification time) and channels are
unchanged and whose files are all present is skipped; JSON files are rewritten only when their content
changes; every file is written through a temporary name and renamed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from islesbench import layouts
from islesbench.atomic import remove_stale_temporaries
from islesbench.data_prep.prepare import validate_cohort
from islesbench.errors import IslesbenchError
from islesbench.imaging.nifti_write import save_nifti
from islesbench.storage import manifest, nnunet_dataset

# Bumped when what is written for a case changes, so that older exports are rewritten.
EXPORT_FORMAT = 1


def case_files_of(prepared: manifest.PreparedData, case_id: str) -> layouts.CaseFiles:
    """The raw files of a prepared case, as the layouts' case model (for checking and reading them)."""
    entry = prepared.cases[case_id]
    files = {m: Path(p) for m, p in entry["source"].items()}
    directory = Path(next(iter(files.values()))).parent if files else prepared.root
    return layouts.CaseFiles(case_id=case_id, split=entry.get("split") or "TRAINING", directory=directory,
                             files=files, layout=prepared.layout)


def case_fingerprint(case: layouts.CaseFiles, channels) -> str:
    """Changes when any source file of the case (name, size, mtime) or the channel list changes."""
    h = hashlib.sha256(json.dumps([EXPORT_FORMAT, list(channels)]).encode())
    for modality in sorted(case.files):
        st = Path(case.files[modality]).stat()
        h.update(f"{modality}:{Path(case.files[modality]).name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def export_nnunet(prepared: manifest.PreparedData, out, dataset_id: int, name: str, preprocessed=None,
                  log=print) -> nnunet_dataset.RawDataset:
    """Write `prepared`'s cohort as nnUNet_raw/Dataset<ID>_<NAME> under `out`, with islesbench's folds.

    Args:
        prepared: the prepared data (its manifest names the raw files; its splits.json the folds).
        out: the nnUNet_raw folder the dataset folder is made in.
        dataset_id: nnU-Net's dataset id, 1-999.
        name: the dataset name (letters, digits, '_' and '-').
        preprocessed: nnUNet_preprocessed; when given, splits_final.json is also written where nnU-Net
            reads it (<preprocessed>/Dataset<ID>_<NAME>/splits_final.json).
        log: receives one line per case written or skipped.

    Returns:
        The dataset's paths. Raises CohortError listing every faulty case before anything is written, and
        IslesbenchError when the folder holds cases of another cohort.
    """
    folder = nnunet_dataset.dataset_folder_name(dataset_id, name)
    dataset = nnunet_dataset.RawDataset(Path(out) / folder)
    channels = prepared.modalities
    folds = prepared.splits()
    fold_cases = {c for f in folds for c in f["val"]}
    cases = [case_files_of(prepared, c) for c in prepared.case_ids(split=None)]
    training = {c.case_id for c in cases if c.split != "TESTING"}
    outside = sorted(training - fold_cases, key=layouts.natural_key)
    if outside:
        raise IslesbenchError(f"{prepared.paths.splits}: training case(s) in no fold: {', '.join(outside)}; "
                              "re-run `islesbench prepare`")
    _refuse_foreign_cases(dataset, {c.case_id for c in cases})
    validate_cohort(cases, channels, skip_bad=False)  # prepare's own check: all faults at once

    dataset.root.mkdir(parents=True, exist_ok=True)
    removed = remove_stale_temporaries(dataset.root)
    if removed:
        log(f"removed {removed} partial file(s) of an interrupted export")
    done = nnunet_dataset.read_export_record(dataset)
    record = {}
    for i, case in enumerate(cases, 1):
        is_training = case.case_id in training
        fingerprint = case_fingerprint(case, channels)
        files = dataset.case_files(case.case_id, len(channels), is_training)
        if done.get(case.case_id) == fingerprint and all(p.is_file() for p in files):
            log(f"[export {i}/{len(cases)}] {case.case_id}: unchanged, skipped")
        else:
            _write_case(dataset, case, channels, is_training)
            log(f"[export {i}/{len(cases)}] {case.case_id}: {'imagesTr + labelsTr' if is_training else 'imagesTs'}")
        record[case.case_id] = fingerprint
        # Recorded after each case, so a killed export resumes after the last case it finished.
        nnunet_dataset.write_json_if_changed(dataset.export_record, _export_record(prepared, {**done, **record}))

    extra = {"name": name, "reference": f"exported by islesbench from {prepared.root.resolve()}",
             "islesbench": {"cohort": prepared.cohort_label, "layout": prepared.layout,
                            "prepared": str(prepared.root.resolve()),
                            "splits_fingerprint": manifest.fingerprint(folds)}}
    nnunet_dataset.write_json_if_changed(dataset.dataset_json, nnunet_dataset.dataset_json(
        channels, len(training), description=f"{prepared.cohort_label}, islesbench channel order", extra=extra))
    splits = nnunet_dataset.splits_final(folds)
    nnunet_dataset.write_json_if_changed(dataset.splits_final, splits)
    if preprocessed is not None:
        nnunet_dataset.write_json_if_changed(nnunet_dataset.preprocessed_splits_path(preprocessed, folder), splits)
    nnunet_dataset.write_json_if_changed(dataset.export_record, _export_record(prepared, record))
    return dataset


def _export_record(prepared: manifest.PreparedData, cases: dict) -> dict:
    return {"format": EXPORT_FORMAT, "prepared": str(prepared.root.resolve()), "cases": cases}


def _refuse_foreign_cases(dataset: nnunet_dataset.RawDataset, case_ids: set) -> None:
    """A dataset folder holding files of cases not in this cohort would make nnU-Net train on them."""
    for folder, found in dataset.cases_on_disk().items():
        foreign = sorted(found - case_ids, key=layouts.natural_key)
        if foreign:
            raise IslesbenchError(f"{dataset.root / folder} holds case(s) not in this cohort ({', '.join(foreign[:3])}"
                                  f"{', ...' if len(foreign) > 3 else ''}); export into another --out or --dataset-id")


def _write_case(dataset: nnunet_dataset.RawDataset, case: layouts.CaseFiles, channels, is_training: bool) -> None:
    """Every channel (float32, scaling applied) and the mask (uint8 0/1), stored order, the case's affine."""
    affine = spacing = None
    for index, modality in enumerate(channels):
        data, file_affine, file_spacing = layouts.load_volume(case, modality)
        if affine is None:
            affine, spacing = file_affine, file_spacing
        save_nifti(dataset.image_path(case.case_id, index, is_training), data, affine, spacing)
        del data
    if is_training:
        mask = layouts.load_volume(case, layouts.MASK)[0]
        save_nifti(dataset.label_path(case.case_id), np.asarray(mask, np.uint8), affine, spacing, dtype=np.uint8)
