"""Fake-but-valid run folders in the results layout, and a tiny raw ISLES-layout cohort, for the report and grid tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from islesbench.atomic import write_json_atomic
from islesbench.config import apply_overrides, profile_config
from islesbench.evaluation.files import write_case_metrics
from islesbench.storage import run_layout

COHORT = "synthetic (seed 0)"
CASES = [f"case_{i}" for i in range(1, 11)]
FOLD_OF = {c: (0 if i < 5 else 1) for i, c in enumerate(CASES)}  # 2 folds of 5 cases

# Per-case Dice of each fake configuration (case_1 .. case_10).
DICE = {
    "pspnet-imagenet-focal": [0.80, 0.70, 0.75, 0.60, 0.90, 0.65, 0.85, 0.70, 0.80, 0.72],
    "pspnet-imagenet-ce": [0.70, 0.66, 0.70, 0.50, 0.85, 0.60, 0.80, 0.71, 0.74, 0.60],
    "pspnet-scratch-focal": [0.72, 0.60, 0.70, 0.52, 0.80, 0.58, 0.75, 0.69, 0.70, 0.64],
    "unet-focal": [0.75, 0.68, 0.70, 0.55, 0.88, 0.62, 0.80, 0.72, 0.75, 0.70],
    "vnet-focal": [0.50, 0.40, 0.0, 0.30, 0.60, 0.35, 0.55, 0.45, 0.50, 0.42],
    "threshold": [0.30, 0.20, 0.25, 0.10, 0.40, 0.22, 0.35, 0.30, 0.28, 0.26],
}
SPECS = {  # name -> (arch, pretrained, loss)
    "pspnet-imagenet-focal": ("pspnet", "imagenet", "focal"),
    "pspnet-imagenet-ce": ("pspnet", "imagenet", "ce"),
    "pspnet-scratch-focal": ("pspnet", None, "focal"),
    "unet-focal": ("unet", None, "focal"),
    "vnet-focal": ("vnet", None, "focal"),
    "threshold": ("threshold", None, "focal"),
}
ENSEMBLE_DICE = [0.82, 0.72, 0.76, 0.62, 0.91, 0.66, 0.86, 0.73, 0.81, 0.73]
SPLITS_FINGERPRINT = "f01d5f01d5f01d5f"  # the fake runs' folds (FOLD_OF), as training records them
SHAPE = (16, 16, 4)
SPACING = (1.0, 1.0, 5.0)


def metric_row(case: str, dice: float, index: int) -> dict:
    """A complete metrics.csv row; a Dice of 0 stands for an empty prediction (infinite distances)."""
    empty = dice == 0.0
    inf = float("inf")
    return {
        "case": case,
        "dice": dice,
        "precision": 0.0 if empty else min(1.0, dice + 0.05),
        "recall": 0.0 if empty else dice - 0.05,
        "hd": inf if empty else 20.0 - 10 * dice + index,
        "hd95": inf if empty else 15.0 - 10 * dice,
        "assd": inf if empty else 5.0 - 4 * dice,
        "assd_pooled": inf if empty else 5.1 - 4 * dice,
        "avd_ml": 0.5 + index / 10,
        "avd_rel": 0.1,
        "ref_volume_ml": 2.0 * (index + 1),
        "pred_volume_ml": 0.0 if empty else 2.0 * (index + 1) + 0.5,
        "lesion_tp": 0 if empty else 1,
        "lesion_fp": 0,
        "lesion_fn": 1 if empty else 0,
        "lesion_f1": 0.0 if empty else 1.0,
        "lesion_f1_iou50": 0.0 if empty else min(1.0, dice + 0.1),
        "lesion_f1_iou20": 0.0 if empty else min(1.0, dice + 0.2),
    }


def config_of(name: str):
    """The ExperimentConfig of a fake configuration."""
    cfg = config_with(*SPECS[name])
    assert cfg.name == name
    return cfg


def config_with(arch: str, pretrained, loss: str):
    """The quick profile's ExperimentConfig of `arch` with this initialisation and loss."""
    return apply_overrides(profile_config("quick"), {"model": {"arch": arch, "pretrained": pretrained},
                                                     "loss": {"name": loss}})


# case_1 and case_2 are two slabs of one patient (both in fold 0), as in ISLES.
PATIENTS = {c: ("patient_A" if c in ("case_1", "case_2") else f"patient_{c}") for c in CASES}


def write_fake_prepared(root: Path) -> Path:
    """The part of a prepared folder the report reads: patients.json."""
    write_json_atomic(root / "patients.json", {"method": "test", "patients": PATIENTS})
    return root


def fake_training_facts(cfg, **drawn) -> dict:
    """A fold's training.json as fold.fit_fold writes it: the configured steps, one replica, and drawn batches
    with half their slices lesion slices (`drawn` overrides those counts' shares)."""
    steps = cfg.train.steps_per_epoch or 25
    samples = steps * cfg.train.batch_size
    slices = samples * (cfg.data.slab_depth if cfg.model.arch == "vnet" else 1)
    return {"steps_per_epoch": steps, "steps_basis": "configured", "epochs": cfg.train.epochs,
            "optimizer_steps": steps * cfg.train.epochs, "replicas": 1, "workers": 1,
            "global_batch_size": cfg.train.batch_size, "per_replica_batch_size": cfg.train.batch_size,
            "drawn": {"batches": steps, "samples": samples, "slices": slices, "lesion_sample_share": 0.5,
                      "lesion_slice_share": 0.5, "lesion_voxel_share": 0.008, **drawn}}


def write_fake_run(runs_root, name: str, dice: list, raw_data=None, history: bool = True,
                   cohort: str = COHORT, folds=(0, 1), prepared=None, config=None, extras=None,
                   patient_map: bool = True, fold_provenance=None, facts: dict | None = None) -> Path:
    """A finished run in the results layout: config.json, the patient map as training keeps it (the prepared
    folder's patients.json, or every case its own patient without one; none with patient_map=False), per-fold
    config/training facts/history/metrics/summary/DONE. `fold_provenance(fold)` -> the fold's provenance record;
    `facts`: the training.json of every fold, default fake_training_facts; {} writes none."""
    cfg = config or config_of(name)
    name = cfg.name
    run = run_layout.run_dir(runs_root, name)
    extra = {"cohort": cohort, "raw_data": str(raw_data) if raw_data else None,
             "splits_fingerprint": SPLITS_FINGERPRINT, **(extras or {})}
    if prepared:
        extra["prepared"] = str(prepared)
    cfg.save(run / "config.json", **extra)
    if patient_map:
        source = Path(prepared) / "patients.json" if prepared else None
        kept = ({**json.loads(source.read_text()), "copied_from": str(source)} if source and source.is_file()
                else {"method": "test: every case its own patient", "patients": {}})
        run_layout.write_patient_map(run, kept)
    for fold in folds:
        paths = run_layout.fold_paths(runs_root, name, fold)
        fold_extra = {"provenance": fold_provenance(fold)} if fold_provenance else {}
        cfg.save(paths.config, fold=fold, **extra, **fold_extra)
        rows = [metric_row(c, d, i) for i, (c, d) in enumerate(zip(CASES, dice)) if FOLD_OF[c] == fold]
        write_case_metrics(rows, paths.metrics_csv, paths.summary_json)
        if cfg.model.arch != "threshold" and facts != {}:
            write_json_atomic(paths.training_facts, facts or fake_training_facts(cfg))
        if history and cfg.model.arch != "threshold":
            lines = ["epoch,dice,loss,val_dice,val_loss"]
            for e in range(4):
                lines.append(f"{e},{0.2 + 0.15 * e + 0.02 * fold},{1.0 - 0.2 * e},{0.15 + 0.12 * e},{1.1 - 0.18 * e}")
            paths.history_csv.write_text("\n".join(lines) + "\n")
        paths.done_marker.write_text("")
    return run


def write_fake_ensemble(runs_root, members: list, name: str = "ensemble-top2", cohort: str = COHORT,
                        splits_fingerprint=SPLITS_FINGERPRINT) -> Path:
    """An ensemble's output: the same fold layout as a run, a config.json naming its members."""
    out = run_layout.run_dir(runs_root, name)
    config = {"name": name, "model": {"arch": "ensemble", "pretrained": None}, "cohort": cohort,
              "members": [str(run_layout.run_dir(runs_root, m)) for m in members],
              "splits_fingerprint": splits_fingerprint}
    return _write_config_and_folds(out, config, ENSEMBLE_DICE)


def _save(path: Path, array, spacing=SPACING) -> None:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*spacing, 1.0])
    nib.Nifti1Image(np.asarray(array), affine).to_filename(str(path))


def write_raw_cohort(root: Path) -> Path:
    """A tiny ISLES-layout cohort (CT_CBF, CT_Tmax, OT) for CASES: a square lesion on slice 2."""
    rng = np.random.default_rng(0)
    for i, case in enumerate(CASES):
        folder = root / "TRAINING" / case
        cbf = rng.normal(50, 5, SHAPE).astype(np.float32)
        tmax = rng.normal(1.0, 0.3, SHAPE).astype(np.float32)
        ot = np.zeros(SHAPE, np.uint8)
        ot[4:10, 5:11, 2] = 1
        ot[6:8, 6:9, 1] = 1
        cbf[ot > 0] = 10.0
        tmax[ot > 0] = 12.0
        for mod, arr, uid in (("CT_CBF", cbf, 100), ("CT_Tmax", tmax, 200), ("OT", ot, 300)):
            stem = f"SMIR.Brain.XX.O.{mod}.{uid + i}"
            _save(folder / stem / f"{stem}.nii", arr)
    return root


def write_predictions(runs_root, name: str) -> None:
    """Validation masks for every case of a run: the reference square, shifted by one voxel."""
    for i, case in enumerate(CASES):
        pred = np.zeros(SHAPE, np.uint8)
        pred[5:11, 5:11, 2] = 1
        pred[6:8, 7:10, 1] = 1
        _save(run_layout.fold_paths(runs_root, name, FOLD_OF[case]).mask_path(case), pred)


def build_fake_runs(root: Path) -> Path:
    """Six configurations, an ensemble and a raw cohort for the example panel under `root`."""
    raw = write_raw_cohort(root / "raw")
    prepared = write_fake_prepared(root / "prepared")
    runs = root / "runs"
    for name, dice in DICE.items():
        write_fake_run(runs, name, dice, raw_data=raw, prepared=prepared)
    write_predictions(runs, "pspnet-imagenet-focal")
    write_fake_ensemble(runs, ["pspnet-imagenet-focal", "unet-focal"])
    write_predictions(runs, "ensemble-top2")
    return runs


def write_fake_external(runs_root, name: str, dice: list, splits_fingerprint=SPLITS_FINGERPRINT,
                        cohort: str = COHORT) -> Path:
    """Imported predictions (`islesbench import`): the fold layout of a run, a config.json of kind external."""
    out = run_layout.run_dir(runs_root, name)
    config = {"name": name, "kind": run_layout.EXTERNAL_KIND, "model": {"arch": "external", "pretrained": None},
              "external": {"source": "/elsewhere/nnUNet_results", "description": "nnU-Net 2d (fake)",
                           "training_config": None},
              "folds": [0, 1], "cohort": cohort, "splits_fingerprint": splits_fingerprint}
    return _write_config_and_folds(out, config, dice)


def _write_config_and_folds(out: Path, config: dict, dice: list) -> Path:
    """config.json and finished folds 0 and 1 (config, metrics, summary, DONE) of a folder that trained nothing."""
    write_json_atomic(out / "config.json", config)
    for fold in (0, 1):
        paths = run_layout.FoldPaths(out / f"fold_{fold}")
        write_json_atomic(paths.config, {**config, "fold": fold})
        rows = [metric_row(c, d, i) for i, (c, d) in enumerate(zip(CASES, dice)) if FOLD_OF[c] == fold]
        write_case_metrics(rows, paths.metrics_csv, paths.summary_json)
        paths.done_marker.write_text("")
    return out


def markdown_table_rows(markdown: str, first_header: str, heading: str | None = None) -> dict:
    """{first cell's text (a link's label): [cells]} of the first Markdown table whose header starts with
    `first_header` (after the line `heading`, when given)."""
    lines = markdown.splitlines()
    if heading is not None:
        lines = lines[lines.index(heading):]
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows[re.sub(r"^\[(.*?)\]\(.*\)$", r"\1", cells[0])] = cells
    return rows
