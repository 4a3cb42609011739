"""Self-supervised pretraining of PSPNet's encoder on unlabelled CTP maps: `islesbench pretrain`.

Method: Models Genesis image restoration (Zhou et al., MICCAI 2019; MedIA 2021; islesbench/data/restoration_pairs.py):
the encoder, with a light decoder (islesbench/models/restoration.py), learns to restore slices after
local pixel shuffling, a non-linear intensity transform and inner or outer cut-outs. It was made for small
unlabelled medical cohorts, needs no negative pairs or large batches (contrastive methods do), and its
transforms apply to each of the five maps. No mask is ever read: TESTING cases, other cohorts and
synthetic cohorts serve as well as labelled ones.

`--data` takes raw cohorts (prepared once into OUT/prepared/) or prepared folders, as often as needed.
`--exclude-fold K` leaves out fold K's validation patients (splits.json, patients.json) of every --data
that is the fine-tuning cohort (`--folds-of`, required with several --data; the same raw source counts as
the same cohort), and any case of any --data with the same content as one of theirs (a copy under another
path), so fold K can be fine-tuned from OUT/fold_K.keras without its validation cases ever having been seen;
`--exclude-fold all` pretrains every fold in turn. pretrain.json records the sha256 of the weights it
describes: `run --pretrained` takes a record only for those weights (a copy that no record describes is
"unknown", refused per fold, flagged as a single file). Layout: islesbench/storage/pretrain_records.py.

Resumable like `run`: every epoch commits the model with its optimizer state and the history together
(islesbench/training/checkpoints.py's scheme), and the same command continues after a kill. TensorBoard logs,
history.csv and progress.png (loss and restorations of fixed slices) are in the state folder.
"""

from __future__ import annotations

from pathlib import Path

from islesbench import layouts
from islesbench.config import PROFILES, load_config_file, parse_fold
from islesbench.data_prep.prepare import resolve_prepared
from islesbench.errors import IslesbenchError

# islesbench.selfsup.pretrain imports TensorFlow at its top: it is imported inside run_command, to keep
# `islesbench --help` fast.


def configure_parser(parser) -> None:
    parser.add_argument("--data", action="append", required=True, metavar="RAW_OR_PREPARED",
                        help="cohort whose CTP maps are read (repeat for several); masks are never read")
    parser.add_argument("--out", required=True, help="output folder (fold_<k>.keras, or <OUT name>.keras)")
    parser.add_argument("--profile", choices=PROFILES, default="quick",
                        help="the fine-tuning profile: sets the encoder width and input size")
    parser.add_argument("--exclude-fold", default=None, metavar="K|all",
                        help="leave out fold K's validation patients of the fine-tuning cohort (all: each fold in turn)")
    parser.add_argument("--folds-of", default=None, metavar="RAW_OR_PREPARED",
                        help="the fine-tuning cohort whose folds --exclude-fold reads (needed with several --data; "
                             "default: the only --data)")
    parser.add_argument("--folds", type=int, default=5, help="number of folds when a raw cohort is prepared")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the folds when a raw cohort is prepared")
    parser.add_argument("--config", default=None, help="JSON file of PretrainConfig overrides")
    parser.add_argument("--epochs", type=int, default=None, help="override epochs")
    parser.add_argument("--seed", type=int, default=None, help="seed of initialisation, order and transforms")
    parser.add_argument("--force", action="store_true", help="pretrain again even when finished")
    layouts.add_layout_argument(parser)


def run_command(args) -> int:
    from islesbench.selfsup.pretrain import pretrain, pretrain_config, resolve_one, resolve_sources

    overrides = [load_config_file(args.config)] if args.config else []
    config = pretrain_config(args.profile, overrides, epochs=args.epochs, seed=args.seed)
    if args.exclude_fold is not None and len(args.data) > 1 and not args.folds_of:
        raise IslesbenchError("--exclude-fold with several --data: name the fine-tuning cohort whose fold is left "
                              "out with --folds-of (it must also be one of --data for its other folds to be read)")
    out = Path(args.out)
    sources = resolve_sources(args.data, out, args.folds, args.split_seed, args.layout, prepare=resolve_prepared)
    folds_of = resolve_one(args.folds_of, out, args.folds, args.split_seed, args.layout, sources,
                           prepare=resolve_prepared) if args.folds_of else sources[0][1]
    if args.exclude_fold is None:
        folds = [None]
    else:
        fold = parse_fold(args.exclude_fold, option="--exclude-fold")
        folds = list(range(len(folds_of.splits()))) if fold == "all" else [fold]
    for k in folds:
        pretrain(config, sources, out, exclude_fold=k, folds_of=folds_of, force=args.force)
    return 0
