"""Train and validate one configuration over the cross-validation folds: `islesbench run`.

`--data` takes a raw ISLES-layout cohort (prepared on the fly into OUT/prepared and reused next time)
or a prepared directory. Each fold is written in the results layout (islesbench.storage.run_layout); a finished
fold is skipped unless --force, and an interrupted one continues from its last completed epoch.
`--arch threshold` evaluates the clinical rCBF < 30 % rule on the same folds, in the same layout.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from islesbench.runtime import distribute, precision
from islesbench.data import fractions
from islesbench.training import hparams, model_reuse, fold as training
from islesbench import layouts
from islesbench.storage import manifest, pretrain_records as pretraining, provenance, run_layout as results
from islesbench.config import (ARCHS, LOSSES, PROFILES, ExperimentConfig, apply_overrides, changed_fields,
                               command_config, load_config_file)
from islesbench.errors import IslesbenchError
from islesbench.runtime.precision import PRECISIONS

# Fields whose change does not change a run's numbers (a resumed run may differ in them). train_patients follows
# from the data, folds and fraction, which are compared; full-data runs made before it was recorded lack it.
_IGNORED_FOR_IDENTITY = ("fold", "provenance", "train_patients")


def configure_parser(parser) -> None:
    parser.add_argument("--arch", choices=ARCHS, default="pspnet", help="network, or the threshold baseline")
    parser.add_argument("--pretrained", nargs="?", const="imagenet", default=None, metavar="imagenet|PATH",
                        help="PSPNet encoder weights: `imagenet` (the default when the flag is given bare), a "
                             "ResNet-50 weights file, an islesbench .keras checkpoint, or an `islesbench pretrain` "
                             "folder of fold_<k>.keras (fold k fine-tunes from its own); absent: from scratch")
    parser.add_argument("--loss", choices=LOSSES, default="focal", help="training loss")
    parser.add_argument("--data", required=True, help="raw ISLES-layout cohort or a prepared directory")
    parser.add_argument("--folds", type=int, default=5, help="number of cross-validation folds (when preparing)")
    parser.add_argument("--fold", default="all", help="fold index to run, or `all`")
    parser.add_argument("--profile", choices=PROFILES, default="quick",
                        help="quick: small input, few epochs (CPU minutes); paper: the paper's settings (GPU)")
    parser.add_argument("--config", default=None, help="JSON file of configuration overrides")
    parser.add_argument("--hparams", default=None,
                        help="`islesbench tune` result: a best_hparams.json (one search; flagged non-nested when its "
                             "folds are the ones scored) or a folder of nested searches outer_fold_<k>/ (one per fold)")
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    parser.add_argument("--train-fraction", type=float, default=None,
                        help="train on this share of each fold's training patients (seeded, nested; data.train_fraction)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="override train.precision (default auto: bfloat16 where the hardware runs it natively)")
    parser.add_argument("--name", default=None, help="run name (default: derived, e.g. pspnet-imagenet-focal)")
    parser.add_argument("--out", default="runs", help="runs folder")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of initialisation and augmentation (seed k > 0 runs into NAME-seed<k>)")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="seed of the patient-grouped folds when --data is a raw cohort")
    parser.add_argument("--force", action="store_true", help="re-run folds that are already finished")
    layouts.add_layout_argument(parser)


def config_from_args(args, tuned: "hparams.TunedHparams | None" = None) -> ExperimentConfig:
    """Profile defaults, then --config, a single --hparams file and the flags, validated.

    A tuned run is named for it (`hparams.tuned_name`): `<name>-tuned` when each fold used its own
    nested search, `<name>-tuned-nonnested` when one search chose on the folds that are scored.
    """
    overrides = [load_config_file(args.config)] if args.config else []
    if tuned is not None and tuned.shared is not None:
        overrides.append(tuned.shared)
    if getattr(args, "precision", None) is not None:
        overrides.append({"train": {"precision": args.precision}})
    if getattr(args, "train_fraction", None) is not None:
        overrides.append({"data": {"train_fraction": args.train_fraction}})
    common = dict(profile=args.profile, arch=args.arch, loss=args.loss, pretrained=args.pretrained,
                  epochs=args.epochs, overrides=overrides)
    name = args.name
    if name is None and tuned is not None:
        name = hparams.tuned_name(command_config(seed=0, **common).name, tuned)
    return command_config(seed=args.seed, name=name, **common)


def run_command(args) -> int:
    tuned = hparams.read_tuned_hparams(args.hparams) if args.hparams else None
    config = config_from_args(args, tuned)
    folds = "all" if args.fold == "all" else [_fold_index(args.fold)]
    run_configuration(config, args.data, args.out, folds=folds, num_folds=args.folds, force=args.force,
                      split_seed=args.split_seed, tuned=tuned, layout=args.layout)
    return 0


def _fold_index(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise IslesbenchError(f"--fold must be a fold number or `all`, not {text!r}") from None


def resolve_prepared(data_dir, runs_root, num_folds: int, seed: int = 0, layout: str | None = None,
                     target=None) -> manifest.PreparedData:
    """A prepared directory as is, or a raw cohort (of `layout`, detected when None) prepared (resumably)
    into `target` (default RUNS/prepared)."""
    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise IslesbenchError(f"--data {data_dir} does not exist")
    if manifest.is_prepared_dir(data_dir):
        return manifest.PreparedData(data_dir)
    from islesbench.data_prep.prepare import prepare_cohort

    target = Path(runs_root) / "prepared" if target is None else Path(target)
    return prepare_cohort(data_dir, target, folds=num_folds, seed=seed, layout=layout)


def run_configuration(config: ExperimentConfig, data_dir, runs_root, folds="all", num_folds: int = 5,
                      force: bool = False, split_seed: int = 0, tuned=None, layout: str | None = None) -> Path:
    """Train and validate `config` on the requested folds; return the run folder.

    The folds come from the prepared data (a raw cohort is prepared with `split_seed`), never from the
    training seed, so repeats of a configuration over seeds share their folds. `tuned` (from
    `hparams.read_tuned_hparams`) applies per-fold hyperparameters of nested searches.
    """
    config.validate()
    # What ran, not what was asked: `auto` is stored resolved, so config.json and the report name the precision.
    config = apply_overrides(config, {"train": {"precision": precision.resolve(config.train.precision)}})
    encoder = pretraining.read_pretrained(config.model.pretrained)  # an islesbench checkpoint (or per-fold folder)
    if config.model.pretrained and encoder is None:
        from islesbench.models import pretrained as pretrained_weights

        pretrained_weights.check_available(config.model.pretrained)
    prepared = resolve_prepared(data_dir, runs_root, num_folds, split_seed, layout)
    config = apply_overrides(config, {"data": {"modalities": list(prepared.modalities)}})
    splits = prepared.splits()
    fold_ids = list(range(len(splits))) if folds == "all" else list(folds)
    bad = [k for k in fold_ids if not 0 <= k < len(splits)]
    if bad:
        raise IslesbenchError(f"fold {bad[0]} does not exist: {prepared.paths.splits} has {len(splits)} folds")
    if tuned is not None:
        tuned.check_folds(fold_ids, splits)
    if encoder is not None:
        encoder.check_folds(fold_ids, splits, prepared, config.model.encoder_width)
    patient_of = prepared.patient_of()
    train_sets = training_sets(config, patient_of, splits)
    chief = distribute.is_chief()
    run_root = results.run_dir(runs_root, config.name)
    extras = {"cohort": prepared.cohort_label, "raw_data": prepared.manifest["source"],
              "prepared": str(prepared.root.resolve()), "grid": prepared.grid,
              "slice_mm": prepared.slice_mm,
              "splits_fingerprint": manifest.fingerprint(splits),
              "tuning": tuned.provenance() if tuned is not None else None,
              "provenance": provenance.provenance()}
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
    t_run = time.time()
    for k in fold_ids:
        paths = results.fold_paths(runs_root, config.name, k)
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
            training.prepare_fold_dir(paths)
            fold_config.save(paths.config, fold=k, **fold_extras)
        share = (f" ({config.data.train_fraction:g} of {len(splits[k]['train'])})"
                 if config.data.train_fraction < 1 else "")
        print(f"== {config.name} fold {k}/{len(splits)}: {len(train_ids)} train{share}, {len(val_ids)} val cases",
              flush=True)
        if config.model.arch != "threshold":
            summary = training.train_and_validate_fold(fold_config, prepared, train_ids, val_ids, paths)
        elif chief:
            summary = validate_threshold_fold(prepared, val_ids, paths)
            training.finish_fold(paths)
        if chief:
            print(f"{config.name} fold {k}: mean Dice {summary['metrics']['dice']['mean']:.3f} "
                  f"({time.time() - t0:.0f} s)", flush=True)
    print(f"{config.name}: {len(fold_ids)} fold(s) in {time.time() - t_run:.0f} s -> {run_root}", flush=True)
    model_reuse.forget()
    if distribute.num_workers() == 1:
        training.release_memory()
    return run_root


def training_sets(config: ExperimentConfig, patient_of: dict, splits: list) -> dict:
    """fold -> the training cases the run uses: all of the fold's, or a seeded nested share of its patients."""
    return {k: fractions.training_subset(fold["train"], patient_of, config.data.train_fraction,
                                         config.data.fraction_seed, k)
            for k, fold in enumerate(splits)}


def validate_threshold_fold(prepared: manifest.PreparedData, val_ids, paths: results.FoldPaths) -> dict:
    """The rCBF rule on the fold's validation cases, written like a trained fold."""
    from islesbench.inference import threshold_rule as threshold

    training.prepare_fold_dir(paths)

    def probability_of(case_id):
        entry = prepared.cases[case_id]
        volumes = load_source_volumes(entry, ("CT_CBF", "CT"))
        return threshold.core_mask(volumes, affine=entry["affine"]).astype("float32")

    return training.write_validation(paths, prepared, val_ids, probability_of, threshold=0.5)


def load_source_volumes(entry: dict, modalities) -> dict:
    """Raw volumes of a prepared case, read from its source files (modalities it lacks are left out)."""
    from islesbench import isles

    return {m: isles.read_nifti(entry["source"][m])[0] for m in modalities if m in entry["source"]}
