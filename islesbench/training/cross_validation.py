"""Train and validate one configuration over the cross-validation folds (`run_configuration`; the
`islesbench run` command is islesbench.commands.run, the benchmark's cells call it too).

The data come already prepared (islesbench.data_prep.prepare.resolve_prepared turns a --data value into
them). Each fold is written in the results layout (islesbench.storage.run_layout); a finished fold is
skipped unless force, and an interrupted one continues from its last completed epoch. The `threshold`
arch evaluates the clinical rCBF < 30 % rule on the same folds, in the same layout.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from islesbench import layouts
from islesbench.config import ExperimentConfig, apply_overrides, changed_fields, read_json_file
from islesbench.data import fractions
from islesbench.errors import IslesbenchError
from islesbench.inference import threshold_rule
from islesbench.inference.validation_output import write_validation
from islesbench.models import MODELS
from islesbench.runtime import distribute, precision
from islesbench.storage import manifest, pretrain_records, provenance, run_layout
from islesbench.training import checkpoints, fold, model_reuse

# islesbench.models.pretrained (Keras) is imported inside check_configuration, to keep `islesbench --help` fast.

# Fields whose change does not change a run's numbers (a resumed run may differ in them). train_patients follows
# from the data, folds and fraction, which are compared; full-data runs made before it was recorded lack it.
_IGNORED_FOR_IDENTITY = ("fold", "provenance", "provenance_earlier", "train_patients")


def check_configuration(config: ExperimentConfig) -> ExperimentConfig:
    """`config` validated, with its precision (and PSPNet's weight gradients) resolved, and its pretrained
    encoder found: every fault of the configuration itself, before any data work (`run_configuration` checks
    again; both are cheap)."""
    config.validate()
    # What ran, not what was asked: `auto` is stored resolved, so config.json and the report name the precision.
    config = apply_overrides(config, {"train": {"precision": precision.resolve(config.train.precision)}})
    spec = MODELS.get(config.model.arch)
    if spec is not None and "weight_gradients" in spec.options:  # the registry says which models take it
        from islesbench.models.matmul_gradients import resolve as resolve_weight_gradients

        config = apply_overrides(config, {"model": {"weight_gradients": resolve_weight_gradients(
            config.model.weight_gradients, config.train.precision, config.model.encoder_width)}})
    encoder = pretrain_records.read_pretrained(config.model.pretrained)  # an islesbench checkpoint (or per-fold folder)
    if config.model.pretrained and encoder is None:
        from islesbench.models import pretrained as pretrained_weights

        pretrained_weights.check_available(config.model.pretrained)
    return config


def run_configuration(config: ExperimentConfig, prepared: manifest.PreparedData, runs_root, folds="all",
                      force: bool = False, tuned=None) -> Path:
    """Train and validate `config` on the requested folds of `prepared`; return the run folder.

    The folds come from the prepared data (a raw cohort is prepared with its split seed), never from the
    training seed, so repeats of a configuration over seeds share their folds. `tuned` (from
    `hparams.read_tuned_hparams`) applies per-fold hyperparameters of nested searches.
    """
    config = check_configuration(config)
    encoder = pretrain_records.read_pretrained(config.model.pretrained)
    config = apply_overrides(config, {"data": {"modalities": list(prepared.modalities)}})
    splits = prepared.splits()
    fold_ids = list(range(len(splits))) if folds == "all" else list(folds)
    bad = [k for k in fold_ids if not 0 <= k < len(splits)]
    if bad:
        raise IslesbenchError(f"fold {bad[0]} does not exist: {prepared.paths.splits} has {len(splits)} folds")
    if tuned is not None:
        tuned.check_folds(fold_ids, splits, config, prepared)
    if encoder is not None:
        encoder.check_folds(fold_ids, splits, prepared, config.model.encoder_width)
    patient_of = prepared.patient_of()
    train_sets = training_sets(config, patient_of, splits)
    chief = distribute.is_chief()
    run_root = run_layout.run_dir(runs_root, config.name)
    extras = {"cohort": prepared.cohort_label, "raw_data": prepared.manifest["source"],
              "prepared": str(prepared.root.resolve()), "grid": prepared.grid,
              "slice_mm": prepared.slice_mm,
              "splits_fingerprint": manifest.fingerprint(splits),
              "tuning": tuned.provenance() if tuned is not None else None}
    if encoder is not None:
        extras["pretraining"] = encoder.provenance(fold_ids, splits, prepared)
    # Every fold's, not only the requested ones: the report's curve needs it when a single fold ran.
    extras["train_patients"] = {str(k): len({patient_of.get(c, c) for c in cases}) for k, cases in train_sets.items()}
    config_file = run_root / "config.json"
    if config_file.is_file() and not force:
        changed = changed_fields(json.loads(config_file.read_text()), {**config.to_dict(), **extras},
                                 ignored=_IGNORED_FOR_IDENTITY)
        if changed:
            raise IslesbenchError(
                f"{run_root} holds a run of a different configuration (differs in: {', '.join(changed)}); "
                f"use another --out or --name, or --force to replace it")
    if chief:
        config.save(config_file, **extras)
        run_layout.write_patient_map(run_root, prepared.patient_record())
    t_run = time.time()
    for k in fold_ids:
        paths = run_layout.fold_paths(runs_root, config.name, k)
        if paths.is_done() and not force:
            print(f"{config.name} fold {k}: finished earlier, skipped (--force re-runs it)", flush=True)
            continue
        if force and chief and paths.root.exists():
            shutil.rmtree(paths.root)
        t0 = time.time()
        fold_config = tuned.fold_config(config, k) if tuned is not None else config
        if encoder is not None and encoder.per_fold:  # fold k fine-tunes from the encoder that never saw its cases
            fold_config = apply_overrides(fold_config, {"model": {"pretrained": encoder.fold_source(k)},
                                                        "name_override": fold_config.name})
        train_ids, val_ids = train_sets[k], splits[k]["val"]
        fold_extras = dict(extras, train_cases=train_ids) if config.data.train_fraction < 1 else extras
        if chief:
            run_layout.prepare_fold_dir(paths)
            fold_config.save(paths.config, fold=k, **fold_extras, **fold_provenance(config, paths))
        share = (f" ({config.data.train_fraction:g} of {len(splits[k]['train'])})"
                 if config.data.train_fraction < 1 else "")
        print(f"== {config.name} fold {k}/{len(splits)}: {len(train_ids)} train{share}, {len(val_ids)} val cases",
              flush=True)
        if config.model.arch != "threshold":
            summary = fold.train_and_validate_fold(fold_config, prepared, train_ids, val_ids, paths,
                                                   fold_train_ids=splits[k]["train"])
        elif chief:
            summary = validate_threshold_fold(prepared, val_ids, paths)
            run_layout.finish_fold(paths)
        if chief:
            print(f"{config.name} fold {k}: mean Dice {summary['metrics']['dice']['mean']:.3f} "
                  f"({time.time() - t0:.0f} s)", flush=True)
    print(f"{config.name}: {len(fold_ids)} fold(s) in {time.time() - t_run:.0f} s -> {run_root}", flush=True)
    model_reuse.forget()
    if distribute.num_workers() == 1:
        fold.release_memory()
    return run_root


def fold_provenance(config: ExperimentConfig, paths: run_layout.FoldPaths) -> dict:
    """The provenance entries of a fold's config.json, written as the fold (re)starts: this process's
    (commit, diff hash, versions, CPU, devices, replicas, threads), and, when an earlier process trained
    some of the fold's epochs under another provenance, that one too (`provenance_earlier`).

    The run's own config.json carries none: it is rewritten by every invocation, and a fold skipped as
    finished was not trained by the current one.
    """
    if config.model.arch == "threshold":
        devices, replicas = ["CPU"], None
    else:
        strategy = distribute.make_strategy()
        devices, replicas = distribute.device_names(strategy), strategy.num_replicas_in_sync
    record = provenance.fold_provenance(devices, replicas)
    entries = {"provenance": record}
    if paths.config.is_file() and checkpoints.latest_epoch_checkpoint(paths.backup_dir)[0] > 0:
        earlier = provenance.earlier_records(read_json_file(paths.config, "fold configuration"), record)
        if earlier:
            entries["provenance_earlier"] = earlier
    return entries


def training_sets(config: ExperimentConfig, patient_of: dict, splits: list) -> dict:
    """fold -> the training cases the run uses: all of the fold's, or a seeded nested share of its patients."""
    return {k: fractions.training_subset(split["train"], patient_of, config.data.train_fraction,
                                         config.data.fraction_seed, k)
            for k, split in enumerate(splits)}


def validate_threshold_fold(prepared: manifest.PreparedData, val_ids, paths: run_layout.FoldPaths) -> dict:
    """The rCBF rule on the fold's validation cases, written like a trained fold."""
    run_layout.prepare_fold_dir(paths)

    def probability_of(case_id):
        entry = prepared.cases[case_id]
        volumes = load_source_volumes(entry, ("CT_CBF", "CT"))
        return threshold_rule.core_mask(volumes, affine=entry["affine"]).astype("float32")

    return write_validation(paths, prepared, val_ids, probability_of, threshold=0.5)


def load_source_volumes(entry: dict, modalities) -> dict:
    """Raw volumes of a prepared case, read from its source files (modalities it lacks are left out)."""
    return {m: layouts.read_nifti(entry["source"][m])[0] for m in modalities if m in entry["source"]}
