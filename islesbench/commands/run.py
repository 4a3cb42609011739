"""Train and validate one configuration over the cross-validation folds: `islesbench run`.

`--data` takes a raw ISLES-layout cohort (prepared on the fly into OUT/prepared and reused next time)
or a prepared directory. Each fold is written in the results layout (islesbench.storage.run_layout); a finished
fold is skipped unless --force, and an interrupted one continues from its last completed epoch.
`--arch threshold` evaluates the clinical rCBF < 30 % rule on the same folds, in the same layout.
"""

from __future__ import annotations

from islesbench import layouts
from islesbench.config import (ARCHS, LOSSES, PRECISIONS, PROFILES, ExperimentConfig, command_config, load_config_file,
                               parse_fold)
from islesbench.data_prep.prepare import resolve_prepared
from islesbench.training import hparams
from islesbench.training.cross_validation import check_configuration, run_configuration


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


def _config_from_args(args, tuned: "hparams.TunedHparams | None" = None) -> ExperimentConfig:
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
    config = _config_from_args(args, tuned)
    fold = parse_fold(args.fold)
    config = check_configuration(config)  # the configuration's own faults before any data work
    prepared = resolve_prepared(args.data, args.out, args.folds, args.split_seed, args.layout)
    run_configuration(config, prepared, args.out, folds="all" if fold == "all" else [fold], force=args.force,
                      tuned=tuned)
    return 0
