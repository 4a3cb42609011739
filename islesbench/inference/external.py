"""Predictions made elsewhere as a run folder (`import_predictions`; the `islesbench import` command is
islesbench.commands.import_predictions): nnU-Net's fold_<k>/validation/<case>.nii.gz, or a flat folder
of <case>.nii.gz, binary masks or probability maps.

Every validation case of every claimed fold must be there, and a fold folder may hold only its own
fold's cases (islesbench's splits.json decides), so the row is scored on exactly the cases and folds of
islesbench's own rows and the patient-paired tests pair it with them. Each prediction must overlay its
reference (shape and affine, islesbench.evaluation.folders.check_geometry). Without `probabilities` a
prediction must hold only 0 and 1; with it, values in [0, 1], lesion where >= the threshold. Metrics are
`islesbench evaluate`'s (islesbench.evaluation.folders.evaluate_pair against the prepared cases' OT
files, the ISLES convention), written in the results layout (islesbench.storage.run_layout) with a
config.json that says what the row is: "kind": "external", where it came from, the folds it claims,
and no training configuration, so no report diffs it against islesbench's configurations.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from islesbench import layouts
from islesbench.atomic import write_json_atomic
from islesbench.errors import CaseError, IslesbenchError
from islesbench.evaluation.files import read_case_metrics, write_case_metrics
from islesbench.evaluation.folders import CasePair, check_geometry, evaluate_pair, prediction_files
from islesbench.evaluation.names import DEFAULT_CONVENTION
from islesbench.imaging import nifti_io
from islesbench.imaging.nifti_write import save_nifti
from islesbench.storage import manifest, nnunet_dataset, provenance, run_layout

NNUNET_LAYOUT = "nnunet fold_<k>/validation"
FLAT_LAYOUT = "flat <case>.nii.gz"


def prediction_folds(pred_dir, splits: list, folds: list) -> tuple[str, dict]:
    """Where each claimed fold's predictions are: (layout, {fold: {case: path}}), every case checked.

    Args:
        pred_dir: nnU-Net's model folder (fold_<k>/validation/ inside) or a flat folder of <case>.nii.gz.
        splits: islesbench's folds ([{"train": [...], "val": [...]}, ...]).
        folds: the fold numbers the predictions claim.

    Returns:
        The layout found and, per fold, its validation cases' files. Raises a CaseError naming the file
        for a case in the wrong fold or outside the folds, and naming the expected file for a missing case.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise IslesbenchError(f"prediction folder {pred_dir} does not exist")
    fold_of = {c: k for k, split in enumerate(splits) for c in split["val"]}
    nnunet = nnunet_dataset.has_fold_folders(pred_dir)
    flat = {} if nnunet else prediction_files(pred_dir)
    for case_id, path in flat.items():
        if case_id not in fold_of:
            raise CaseError(case_id, str(path), "not a validation case of any of islesbench's folds")
    found = {}
    for k in folds:
        folder = nnunet_dataset.validation_dir(pred_dir, k) if nnunet else pred_dir
        if nnunet and not folder.is_dir():
            raise IslesbenchError(f"{folder}: missing (fold {k} is claimed; name the folds present with --folds)")
        files = prediction_files(folder) if nnunet else flat
        if nnunet:
            for case_id, path in files.items():
                if case_id not in splits[k]["val"]:
                    where = (f"islesbench validates it in fold {fold_of[case_id]}, not fold {k}" if case_id in fold_of
                             else "not a validation case of any of islesbench's folds")
                    raise CaseError(case_id, str(path), f"{where}: predicted on other folds than islesbench's")
        for case_id in splits[k]["val"]:
            if case_id not in files:
                raise CaseError(case_id, str(folder / layouts.prediction_name(case_id)),
                                f"missing prediction (a validation case of fold {k})")
        found[k] = {c: files[c] for c in splits[k]["val"]}
    return (NNUNET_LAYOUT if nnunet else FLAT_LAYOUT), found


def prediction_values(pair: CasePair, probabilities: bool) -> np.ndarray:
    """The prediction's values (float32, scaled), refused unless 0/1 (or, with `probabilities`, in [0, 1])."""
    try:
        info = nifti_io.read_info(pair.pred, ndim=3)
        values = nifti_io.scaled(info, nifti_io.read_raw(info))
    except nifti_io.NiftiFileError as exc:
        raise CaseError(pair.case_id, str(pair.pred), exc.fault) from None
    if not np.all(np.isfinite(values)):
        raise CaseError(pair.case_id, str(pair.pred), "NaN/Inf values")
    if probabilities:
        if values.size and (values.min() < 0 or values.max() > 1):
            raise CaseError(pair.case_id, str(pair.pred),
                            f"probabilities outside [0, 1] ({values.min():g}..{values.max():g})")
    else:
        other = np.unique(values[(values != 0) & (values != 1)])
        if other.size:
            raise CaseError(pair.case_id, str(pair.pred),
                            f"not a binary mask (values {', '.join(f'{v:g}' for v in other[:3])}"
                            f"{', ...' if other.size > 3 else ''} besides 0 and 1); pass --probabilities for "
                            "probability maps")
    return values.reshape(info.shape[:3])


def external_config(name: str, pred_dir, layout: str, prepared: manifest.PreparedData, folds: list,
                    probabilities: bool, threshold: float, description: str) -> dict:
    """config.json of an imported row: what it is and where it came from; no training configuration."""
    splits = prepared.splits()
    return {"name": name, "kind": run_layout.EXTERNAL_KIND, "model": {"arch": run_layout.EXTERNAL_KIND, "pretrained": None},
            "external": {"source": str(Path(pred_dir).resolve()), "layout": layout, "description": description,
                         "probabilities": bool(probabilities), "threshold": float(threshold),
                         "training_config": None},
            "folds": list(folds), "cohort": prepared.cohort_label, "raw_data": prepared.manifest["source"],
            "prepared": str(prepared.root.resolve()), "grid": prepared.grid, "slice_mm": prepared.slice_mm,
            "splits_fingerprint": manifest.fingerprint(splits), "convention": DEFAULT_CONVENTION,
            "provenance": provenance.provenance()}


def import_predictions(name: str, pred_dir, prepared: manifest.PreparedData, runs_root, *, probabilities: bool = False,
                       threshold: float = 0.5, folds="all", description: str = "", force: bool = False,
                       log=print) -> Path:
    """Check, evaluate and write external predictions as RUNS/<name>/; return the run folder.

    Args:
        name: the row's name in the report (the run folder's name).
        pred_dir: nnU-Net's model folder or a flat folder of <case>.nii.gz (`prediction_folds`).
        prepared: the prepared data whose folds and reference masks the predictions are judged on.
        runs_root: the runs folder.
        probabilities: the files are probability maps (else binary masks).
        threshold: lesion where a probability is >= this (a binary mask is read at 0.5).
        folds: "all" or the fold numbers the predictions claim.
        description: free text for config.json (what made the predictions, with which settings).
        force: redo finished folds, and replace a run folder holding something else.
        log: receives one line per case.
    """
    if not (name and "/" not in name and not name.startswith(".")):
        raise IslesbenchError(f"--name {name!r}: a run folder name (no '/', not hidden) is needed")
    if not 0 < threshold <= 1:
        raise IslesbenchError(f"--threshold must lie in (0, 1], not {threshold}")
    splits = prepared.splits()
    claimed = list(range(len(splits))) if folds == "all" else sorted(set(folds))
    bad = [k for k in claimed if not 0 <= k < len(splits)]
    if bad:
        raise IslesbenchError(f"fold {bad[0]} does not exist: {prepared.paths.splits} has {len(splits)} folds")
    layout, found = prediction_folds(pred_dir, splits, claimed)
    pairs = {k: [CasePair(c, p, Path(prepared.cases[c]["source"][layouts.MASK])) for c, p in files.items()]
             for k, files in found.items()}
    check_geometry([p for fold_pairs in pairs.values() for p in fold_pairs])
    cut = threshold if probabilities else 0.5
    config = external_config(name, pred_dir, layout, prepared, claimed, probabilities, cut, description)
    run_root = run_layout.run_dir(runs_root, name)
    _check_run_folder(run_root, config, force)
    write_json_atomic(run_root / "config.json", config)
    for k, fold_pairs in pairs.items():
        paths = run_layout.fold_paths(runs_root, name, k)
        if paths.is_done() and not force:
            log(f"{name} fold {k}: imported earlier, skipped (--force redoes it)")
            continue
        if force and paths.root.exists():
            shutil.rmtree(paths.root)
        run_layout.prepare_fold_dir(paths)
        write_json_atomic(paths.config, {**config, "fold": k})
        write_json_atomic(paths.threshold_json, {"threshold": cut, "chosen_on": "given (islesbench import "
                                                 "--threshold), not chosen by islesbench"})
        rows = []
        for pair in fold_pairs:
            values = prediction_values(pair, probabilities)
            entry = prepared.cases[pair.case_id]
            affine, spacing = np.asarray(entry["affine"]), entry["spacing"]
            if probabilities:
                save_nifti(paths.probability_path(pair.case_id), values, affine, spacing)
            save_nifti(paths.mask_path(pair.case_id), (values >= cut).astype(np.uint8), affine, spacing, dtype=np.uint8)
            rows.append({"case": pair.case_id, **evaluate_pair(pair, cut, DEFAULT_CONVENTION)})
            log(f"[import fold {k}] {pair.case_id}: Dice {rows[-1]['dice']:.3f}")
        write_case_metrics(rows, paths.metrics_csv, paths.summary_json,
                           extra_summary={"threshold": cut, "pred_dir": str(Path(pred_dir).resolve()),
                                          "external": True})
        run_layout.finish_fold(paths)
    return run_root


def imported_rows(run_root) -> list[dict]:
    """Per-case metric rows of every finished fold of an imported run (for the command's summary line)."""
    rows = []
    for _, paths in run_layout.list_folds(run_root):
        if paths.is_done():
            rows += read_case_metrics(paths.metrics_csv)
    return rows


def _check_run_folder(run_root: Path, config: dict, force: bool) -> None:
    """Refuse to mix: a run folder holding an islesbench run, or other imported predictions, needs --force."""
    path = run_root / "config.json"
    if not path.is_file() or force:
        return
    existing = run_layout.read_run_config(run_root)
    if not run_layout.is_external(existing):
        raise IslesbenchError(f"{run_root} holds an islesbench run, not imported predictions; use another --name "
                              "or --out")
    keys = ("external", "folds", "prepared", "splits_fingerprint")
    old = {k: existing.get(k) for k in keys}
    new = json.loads(json.dumps({k: config.get(k) for k in keys}))
    changed = [k for k in keys if old[k] != new[k]]
    if changed:
        raise IslesbenchError(f"{run_root} holds other imported predictions (differs in: {', '.join(changed)}); "
                              "use another --name, or --force to replace them")
