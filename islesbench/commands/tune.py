"""Cross-validated hyperparameter search for one model/loss pair with KerasTuner: `islesbench tune`.

The objective is the mean validation Dice over the first K patient-grouped folds of the prepared
splits. Re-running the same command continues the search (KerasTuner state in OUT/keras_tuner; a
larger --max-trials adds trials; an interrupted trial resumes its unfinished fold from its last
epoch). OUT gets best_hparams.json (feed it to `islesbench run --hparams`), trials.csv and trials.png.

Distributed (KerasTuner's own mode): start the same command once with KERASTUNER_TUNER_ID=chief and
once per worker with KERASTUNER_TUNER_ID=tuner0, tuner1, ..., all with KERASTUNER_ORACLE_IP and
KERASTUNER_ORACLE_PORT naming the chief. The chief only serves the search and writes the outputs;
workers train (each on the GPUs its CUDA_VISIBLE_DEVICES shows). --data must then be a prepared
directory. A worker silent for --worker-timeout seconds has its trial handed to another worker; a
chief that hears from no worker for that long stops with a message (re-run to resume).
"""

from __future__ import annotations

import time
from pathlib import Path

from islesbench.config import ARCHS, LOSSES, PROFILES, apply_overrides, command_config, load_config_file
from islesbench.data_prep.prepare import resolve_prepared
from islesbench.errors import IslesbenchError
from islesbench.storage import manifest
from islesbench.training import hparams
from islesbench.tuning.search_space import build_search_space
from islesbench.tuning.tune import TUNERS, check_settings, distributed_role, inner_folds, print_summary

# KerasTuner and Keras (islesbench.tuning.cv_tuner, islesbench.tuning.outputs, islesbench.models.pretrained) are
# imported inside run_command, to keep `islesbench --help` fast.


def configure_parser(parser) -> None:
    parser.add_argument("--arch", choices=[a for a in ARCHS if a != "threshold"], required=True, help="network")
    parser.add_argument("--loss", choices=LOSSES, default="focal", help="training loss")
    parser.add_argument("--pretrained", nargs="?", const="imagenet", default=None, metavar="imagenet|PATH",
                        help="PSPNet encoder weights (as for `islesbench run`)")
    parser.add_argument("--tuner", choices=TUNERS, default="random", help="KerasTuner oracle")
    parser.add_argument("--max-trials", type=int, default=10, help="trials in total (a re-run with more adds trials)")
    parser.add_argument("--folds", type=int, default=None, metavar="K",
                        help="use the first K folds of the prepared splits (default: all); with --outer-fold, "
                             "the number of inner folds (default 3)")
    parser.add_argument("--outer-fold", type=int, default=None, metavar="K",
                        help="nested tuning: search on inner folds made of outer fold K's training patients only, "
                             "into OUT/outer_fold_K (give `islesbench run --hparams OUT` every outer fold's search)")
    parser.add_argument("--cv-folds", type=int, default=5, help="folds to split a raw cohort into when preparing it")
    parser.add_argument("--data", required=True, help="raw ISLES-layout cohort or a prepared directory")
    parser.add_argument("--profile", choices=PROFILES, default="quick", help="base configuration and search ranges")
    parser.add_argument("--out", required=True, help="search folder (state, trials, outputs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the oracle, the folds and the training")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per fold (Hyperband: the largest epoch budget)")
    parser.add_argument("--config", default=None, help="JSON file of base configuration overrides")
    parser.add_argument("--space", default=None,
                        help="JSON file narrowing the search space: {name: value | [choices] | {min, max, step, log}}")
    parser.add_argument("--in-process", action="store_true",
                        help="train folds in the search process instead of one child process per fold "
                             "(faster start, but Keras keeps ~45 MiB per fold: memory grows over trials)")
    parser.add_argument("--worker-timeout", type=float, default=300.0,
                        help="distributed: seconds a worker may stay silent before its trial is handed on, and "
                             "the chief may go without hearing from any worker before it stops")


def _base_config_from_args(args):
    """Profile defaults, then --config and the flags, validated (before the trial's values)."""
    return command_config(profile=args.profile, arch=args.arch, loss=args.loss, pretrained=args.pretrained,
                          seed=args.seed, epochs=args.epochs,
                          overrides=[load_config_file(args.config)] if args.config else [])


def run_command(args) -> int:
    from islesbench.tuning import cv_tuner, outputs

    role = distributed_role()
    out_dir = Path(args.out) if args.outer_fold is None else hparams.outer_fold_dir(args.out, args.outer_fold)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = _base_config_from_args(args)
    if base.model.pretrained:
        from islesbench.models import pretrained as pretrained_weights

        pretrained_weights.check_available(base.model.pretrained)
    if role != "single" and not manifest.is_prepared_dir(args.data):
        raise IslesbenchError("distributed tuning needs --data to be a prepared directory "
                              "(run `islesbench prepare` once first)")
    prepared = resolve_prepared(args.data, out_dir, args.cv_folds, args.seed)
    base = apply_overrides(base, {"data": {"modalities": list(prepared.modalities)}}).validate()
    splits = prepared.splits()
    outer_val = None
    if args.outer_fold is not None:
        if not 0 <= args.outer_fold < len(splits):
            raise IslesbenchError(f"--outer-fold {args.outer_fold}: {prepared.paths.splits} has {len(splits)} folds")
        outer_val = sorted(splits[args.outer_fold]["val"])
        splits = inner_folds(prepared, splits[args.outer_fold]["train"], args.folds or 3, args.seed)
    k = args.folds or len(splits)
    if not 1 <= k <= len(splits):
        raise IslesbenchError(f"--folds {k}: {prepared.paths.splits} has {len(splits)} folds")
    folds = list(range(k))
    space_overrides = load_config_file(args.space) if args.space else None
    space = build_search_space(args.arch, args.loss, args.profile, base=base, max_input_size=prepared.grid,
                               space_overrides=space_overrides)
    settings = {"arch": args.arch, "loss": args.loss, "pretrained": base.model.pretrained, "tuner": args.tuner,
                "profile": args.profile, "folds": folds, "seed": args.seed, "epochs": base.train.epochs,
                "prepared": str(prepared.root.resolve()), "cohort": prepared.cohort_label,
                "base_config": base.to_dict(), "search_space": space.get_config(),
                "outer_fold": args.outer_fold, "outer_val": outer_val}
    oracle = cv_tuner.make_oracle(args.tuner, space, args.max_trials, args.seed, base.train.epochs)
    check_settings(out_dir, settings, write=role != "worker")
    tuner = cv_tuner.CrossValidatedTuner(oracle, prepared=prepared, base_config=base, folds=folds,
                                         out_dir=out_dir, worker_timeout=args.worker_timeout,
                                         isolate_folds=not args.in_process,
                                         splits=splits if args.outer_fold is not None else None)
    where = f"inner folds {folds} of outer fold {args.outer_fold}" if args.outer_fold is not None else f"folds {folds}"
    print(f"tune {base.name} ({args.tuner}, {args.max_trials} trials, {where}, {role}) -> {out_dir}", flush=True)
    t0 = time.time()
    try:
        tuner.search()
    finally:
        if role != "worker":
            title = (f"{base.name}: {args.tuner} search, mean validation Dice over {k} fold(s)\n"
                     f"{prepared.cohort_label} cohort, {args.profile} profile, {base.train.epochs} epoch(s)")
            best, rows = outputs.write_outputs(tuner.oracle, out_dir, folds, tuner.project_dir,
                                               {**{k_: settings[k_] for k_ in ("arch", "loss", "pretrained",
                                                                               "tuner", "profile", "seed",
                                                                               "epochs", "cohort", "outer_fold",
                                                                               "outer_val")},
                                                "config_name": base.name,
                                                # what `run --hparams` checks its data against (not in `settings`,
                                                # so that searches begun before it was recorded still resume)
                                                "prepared_data": prepared.data_fingerprint()}, title)
            print_summary(best, rows, out_dir, time.time() - t0)
    return 0
