"""nnU-Net v2's on-disk contract, as far as islesbench writes and reads it: the raw dataset folder that
`islesbench export --format nnunet` writes, the `splits_final.json` nnU-Net takes its folds from, and the
per-fold validation folders of a trained nnU-Net model that `islesbench import` reads.

    nnUNet_raw/Dataset<ID:03d>_<NAME>/dataset.json           channel_names, labels, numTraining, file_ending
                                      imagesTr/<case>_<XXXX>.nii.gz   one file per input channel (XXXX = 0000, 0001, ...)
                                      labelsTr/<case>.nii.gz          the lesion mask, 0 = background, 1 = lesion
                                      imagesTs/<case>_<XXXX>.nii.gz   cases without a mask
                                      splits_final.json               a copy of the folds (nnU-Net does not read it here)
                                      islesbench_export.json          what islesbench exported (per-case input fingerprints)
    nnUNet_preprocessed/Dataset<ID:03d>_<NAME>/splits_final.json      the folds nnU-Net trains on
    nnUNet_results/Dataset<ID:03d>_<NAME>/<trainer>__<plans>__<config>/fold_<k>/validation/<case>.nii.gz

The rules are nnU-Net's documentation (github.com/MIC-DKFZ/nnUNet, documentation/dataset_format.md and
manual_data_splits.md): a case identifier names all its files; images are `<case>_<XXXX>` with a
four-digit channel identifier, every case having the same channels in the same order; a segmentation is
`<case>` with background 0 and consecutive integer labels; dataset.json maps channel identifiers to names
(the name `CT` selects nnU-Net's CT normalisation, any other name z-scoring) and label names to values;
splits_final.json is a list with one {"train": [...], "val": [...]} per fold, read from the dataset's
folder under nnUNet_preprocessed. No other module builds these names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from islesbench.atomic import write_text_atomic
from islesbench.config import read_json_file
from islesbench.errors import IslesbenchError

FILE_ENDING = ".nii.gz"
LABELS = {"background": 0, "lesion": 1}
SPLITS_FINAL = "splits_final.json"
EXPORT_RECORD = "islesbench_export.json"
# nnU-Net reads the dataset id as three digits; its docs reserve nothing above 10 but the Decathlon's 1-10.
DATASET_ID_RANGE = (1, 999)
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})" + re.escape(FILE_ENDING) + "$")


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """`Dataset<ID:03d>_<NAME>`, nnU-Net's name of a dataset folder; one-line error for an unusable id or name."""
    lo, hi = DATASET_ID_RANGE
    if isinstance(dataset_id, bool) or not isinstance(dataset_id, int) or not lo <= dataset_id <= hi:
        raise IslesbenchError(f"--dataset-id must be an integer from {lo} to {hi} (nnU-Net's three digits), "
                              f"not {dataset_id!r}")
    if not _NAME_PATTERN.match(name or ""):
        raise IslesbenchError(f"--name {name!r}: use letters, digits, '_' and '-' only (it becomes a folder name)")
    return f"Dataset{dataset_id:03d}_{name}"


@dataclass(frozen=True)
class RawDataset:
    """Every path of one nnU-Net raw dataset folder."""

    root: Path

    @property
    def images_tr(self) -> Path:
        return self.root / "imagesTr"

    @property
    def labels_tr(self) -> Path:
        return self.root / "labelsTr"

    @property
    def images_ts(self) -> Path:
        return self.root / "imagesTs"

    @property
    def dataset_json(self) -> Path:
        return self.root / "dataset.json"

    @property
    def splits_final(self) -> Path:
        return self.root / SPLITS_FINAL

    @property
    def export_record(self) -> Path:
        return self.root / EXPORT_RECORD

    def image_path(self, case_id: str, channel: int, training: bool = True) -> Path:
        """`imagesTr/<case>_<XXXX>.nii.gz` (imagesTs for a case without a mask)."""
        return (self.images_tr if training else self.images_ts) / f"{case_id}_{channel:04d}{FILE_ENDING}"

    def label_path(self, case_id: str) -> Path:
        return self.labels_tr / f"{case_id}{FILE_ENDING}"

    def case_files(self, case_id: str, channels: int, training: bool) -> list[Path]:
        """Every file of one case: its channels, then its label when it is a training case."""
        files = [self.image_path(case_id, i, training) for i in range(channels)]
        return files + [self.label_path(case_id)] if training else files

    def cases_on_disk(self) -> dict[str, set]:
        """{"imagesTr"/"labelsTr"/"imagesTs": case identifiers with a file there} (hidden temporaries ignored)."""
        found = {}
        for folder in (self.images_tr, self.labels_tr, self.images_ts):
            names = [p.name for p in folder.glob(f"*{FILE_ENDING}") if not p.name.startswith(".")] \
                if folder.is_dir() else []
            if folder == self.labels_tr:
                found[folder.name] = {n[: -len(FILE_ENDING)] for n in names}
            else:
                found[folder.name] = {m.group("case") for m in map(_CHANNEL_FILE.match, names) if m}
        return found


def dataset_json(channels, num_training: int, description: str = "", extra: dict | None = None) -> dict:
    """dataset.json of nnU-Net v2: channel identifiers -> names in order, the binary lesion labels.

    Args:
        channels: input channel names in file order (islesbench's names: CT_CBF, ..., CT).
        num_training: the number of training cases (those in labelsTr).
        description: free text nnU-Net keeps but does not read.
        extra: more keys nnU-Net ignores (what islesbench exported it from).
    """
    record = {"channel_names": {str(i): str(c) for i, c in enumerate(channels)}, "labels": dict(LABELS),
              "numTraining": int(num_training), "file_ending": FILE_ENDING}
    if description:
        record["description"] = description
    return {**record, **(extra or {})}


def splits_final(folds: list) -> list:
    """nnU-Net's splits_final.json content: per fold {"train": [...], "val": [...]} and nothing else."""
    return [{"train": list(f["train"]), "val": list(f["val"])} for f in folds]


def preprocessed_splits_path(preprocessed_root, folder_name: str) -> Path:
    """Where nnU-Net reads a dataset's folds: nnUNet_preprocessed/<DatasetXXX_NAME>/splits_final.json."""
    return Path(preprocessed_root) / folder_name / SPLITS_FINAL


def write_json_if_changed(path, obj) -> bool:
    """Write JSON through a temporary name unless the file already holds exactly this text; True if written."""
    path = Path(path)
    text = json.dumps(obj, indent=2) + "\n"
    if path.is_file() and path.read_text() == text:
        return False
    write_text_atomic(path, text)
    return True


def read_export_record(dataset: RawDataset) -> dict:
    """case -> input fingerprint of the cases a previous export finished (empty when none or unreadable)."""
    if not dataset.export_record.is_file():
        return {}
    try:
        data = read_json_file(dataset.export_record, "islesbench export record")
    except IslesbenchError:
        return {}  # a damaged record only costs re-writing the cases
    cases = data.get("cases") if isinstance(data, dict) else None
    return dict(cases) if isinstance(cases, dict) else {}


def validation_dir(results_dir, fold: int) -> Path:
    """`fold_<k>/validation` of a trained nnU-Net model folder (nnUNet_results/.../<trainer__plans__config>)."""
    return Path(results_dir) / f"fold_{fold}" / "validation"


def has_fold_folders(results_dir) -> bool:
    """True when `results_dir` is laid out as nnU-Net's model folder (fold_<k>/validation/ inside)."""
    return any(p.is_dir() for p in Path(results_dir).glob("fold_*/validation"))
