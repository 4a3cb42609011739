"""The ISLES 2018 layout (SMIR): finding the cases and naming their files.

    ROOT/TRAINING/case_N/SMIR.Brain.XX.O.<MOD>.<ID>/SMIR.Brain.XX.O.<MOD>.<ID>.nii[.gz]
    ROOT/TESTING/case_N/...            (the same, without OT)

with <MOD> one of CT, CT_4DPWI, CT_CBF, CT_CBV, CT_MTT, CT_Tmax, OT -- islesbench's channel names are
ISLES 2018's, so no renaming happens here. A NIfTI file lying directly in the case folder
(``case_N/SMIR.Brain.XX.O.<MOD>.<ID>.nii``) is accepted too. Patients are not recorded in this layout
(two slabs of one patient are two cases): prepare infers them from the headers.
Reading, checking and the one-line faults are the same for every layout (islesbench.layouts.cases).
"""

from __future__ import annotations

import re
from pathlib import Path

from islesbench.errors import IslesbenchError
from islesbench.imaging.nifti_io import NIFTI_SUFFIXES
from islesbench.layouts.cases import CaseFiles, data_folder, natural_key

NAME = "isles2018"
MODALITIES = ("CT", "CT_4DPWI", "CT_CBF", "CT_CBV", "CT_MTT", "CT_Tmax", "OT")
MAP_MODALITIES = ("CT", "CT_CBF", "CT_CBV", "CT_MTT", "CT_Tmax")  # 3-D inputs
SPLITS = ("TRAINING", "TESTING")
DEFAULT_SLICE_MM = None  # thin slabs (2-22 slices of 4-12 mm): the slice axis is never resampled

_NAME = re.compile(r"^SMIR\.Brain\.XX\.O\.(?P<mod>[A-Za-z0-9_]+)\.(?P<id>\d+)(?P<ext>\.nii(\.gz)?)?$")
_CANONICAL = {m.upper(): m for m in MODALITIES}


def looks_like(root) -> bool:
    """True when `root` is an ISLES 2018 cohort, split folder or case folder."""
    root = Path(root)
    if not root.is_dir():
        return False
    if any((root / s).is_dir() for s in SPLITS) or root.name.upper() in SPLITS:
        return True
    if _holds_modalities(root):
        return True
    return any(p.is_dir() and re.match(r"^case_\d+$", p.name) for p in root.iterdir())


def discover_cohort(root) -> list[CaseFiles]:
    """All cases under `root`: a folder with TRAINING/ and/or TESTING/, one of those, or one case folder."""
    root = data_folder(root)
    cases: list[CaseFiles] = []
    split_dirs = [root / s for s in SPLITS if (root / s).is_dir()]
    if split_dirs:
        for folder in split_dirs:
            cases += _cases_in(folder, folder.name)
    elif root.name.upper() in SPLITS:
        cases = _cases_in(root, root.name.upper())
    elif _holds_modalities(root):
        split = root.parent.name.upper() if root.parent.name.upper() in SPLITS else ""
        cases = [_case_files(root, split)]
    else:
        cases = _cases_in(root, "")
    if not cases:
        raise IslesbenchError(
            f"no ISLES 2018 cases found under {root}: expected TRAINING/ and/or TESTING/ folders of "
            "case_N folders holding SMIR.Brain.XX.O.<MOD>.<ID>/SMIR.Brain.XX.O.<MOD>.<ID>.nii[.gz] "
            "files, a TRAINING or TESTING folder itself, or one case folder (an ISLES'24 BIDS cohort has "
            "raw_data/ and derivatives/ of sub-<id> folders: --layout isles24)"
        )
    return cases


def _holds_modalities(folder: Path) -> bool:
    return any(_NAME.match(p.name) for p in folder.iterdir())


def _cases_in(folder: Path, split: str) -> list[CaseFiles]:
    dirs = [
        p
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (re.match(r"^case_\d+$", p.name) or _holds_modalities(p))
    ]
    return [_case_files(d, split) for d in sorted(dirs, key=lambda p: natural_key(p.name))]


def _case_files(directory: Path, split: str) -> CaseFiles:
    files: dict = {}
    problems: list = []
    for entry in sorted(directory.iterdir(), key=lambda p: natural_key(p.name)):
        match = _NAME.match(entry.name)
        if not match:
            continue
        modality = _CANONICAL.get(match["mod"].upper())
        if modality is None:
            continue  # another sequence (e.g. MR_DWI) is not ours to judge
        if entry.is_dir():
            niftis = sorted(p for p in entry.iterdir() if p.is_file() and p.name.endswith(NIFTI_SUFFIXES))
            if not niftis:
                problems.append((str(entry), f"modality folder {modality} holds no .nii/.nii.gz file"))
                continue
            if len(niftis) > 1:
                problems.append((str(entry), f"modality folder {modality} holds {len(niftis)} NIfTI files"))
            path = niftis[0]
        elif match["ext"]:
            path = entry
        else:
            continue
        if modality in files:
            problems.append((str(path), f"duplicate {modality} file (first one: {files[modality]})"))
            continue
        files[modality] = path
    return CaseFiles(directory.name, split, directory, files, tuple(problems))


