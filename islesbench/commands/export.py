"""Write a cohort as another framework's dataset on islesbench's folds: `islesbench export --format nnunet`.

Writes an nnU-Net v2 raw dataset, OUT/Dataset<ID>_<NAME>/ (imagesTr/<case>_<XXXX>.nii.gz, one file per
input channel in islesbench's channel order; labelsTr/<case>.nii.gz, 0 = background, 1 = lesion;
imagesTs/ for cases without a mask; dataset.json), and splits_final.json holding exactly islesbench's
patient-grouped folds, so nnU-Net's folds are islesbench's. nnU-Net reads its folds from
nnUNet_preprocessed/Dataset<ID>_<NAME>/splits_final.json: give that folder as --preprocessed, or copy
the file there after `nnUNetv2_plan_and_preprocess`. Images keep their input geometry and stored
orientation (nnU-Net resamples itself). `--data` takes a prepared directory (its splits.json are the
folds) or a raw cohort, prepared first into --prepared (default OUT/islesbench-prepared, with --folds and
--seed as `islesbench prepare` makes them); `islesbench import --data` then takes that prepared
directory. Faulty cases are refused as `prepare` refuses them. A re-run skips unchanged cases.
"""

from __future__ import annotations

from pathlib import Path

from islesbench import layouts
from islesbench.data_prep.export_nnunet import export_nnunet
from islesbench.data_prep.prepare import resolve_prepared

FORMATS = ("nnunet",)


def configure_parser(parser) -> None:
    parser.add_argument("--format", choices=FORMATS, required=True, help="dataset format to write")
    parser.add_argument("--data", required=True, help="prepared directory, or a raw cohort (prepared first)")
    parser.add_argument("--out", required=True, help="folder the dataset folder is written in (nnUNet_raw)")
    parser.add_argument("--dataset-id", type=int, default=501, help="nnU-Net dataset id (1-999)")
    parser.add_argument("--name", default="ISLES", help="nnU-Net dataset name (letters, digits, '_' and '-')")
    parser.add_argument("--preprocessed", default=None,
                        help="nnUNet_preprocessed: also write splits_final.json where nnU-Net reads it")
    parser.add_argument("--prepared", default=None,
                        help="where a raw --data is prepared (default OUT/islesbench-prepared)")
    parser.add_argument("--folds", type=int, default=5, help="number of patient-grouped folds (raw --data only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment (raw --data only)")
    layouts.add_layout_argument(parser)


def run_command(args) -> int:
    out = Path(args.out)
    target = Path(args.prepared) if args.prepared else out / "islesbench-prepared"
    prepared = resolve_prepared(args.data, out, args.folds, args.seed, args.layout, target=target)
    dataset = export_nnunet(prepared, out, args.dataset_id, args.name, preprocessed=args.preprocessed)
    print(f"wrote {dataset.root} ({len(prepared.splits())} folds in {dataset.splits_final.name}"
          + (f"; also {Path(args.preprocessed) / dataset.root.name / dataset.splits_final.name}" if args.preprocessed
             else "; copy it to nnUNet_preprocessed/" + dataset.root.name + "/ after planning") + ")")
    print(f"islesbench import --data {prepared.root} ... reads predictions made on these folds")
    return 0
