"""The ISLES'24 layout (BIDS): finding each subject's files by their BIDS entities.

    ROOT/raw_data/sub-<id>/ses-01/sub-<id>_ses-01_{ncct,cta,ctp}.nii.gz
    ROOT/raw_data/sub-<id>/ses-01/perfusion-maps/sub-<id>_ses-01_{cbf,cbv,mtt,tmax}.nii.gz   (CTP space)
    ROOT/derivatives/sub-<id>/ses-01/[perfusion-maps/]sub-<id>_ses-01_space-ncct_{cbf,cbv,mtt,tmax,cta,ctp}.nii.gz
    ROOT/derivatives/sub-<id>/ses-02/sub-<id>_ses-02_space-ncct_{dwi,adc,lesion-msk}.nii.gz
    ROOT/phenotype/...                                     (clinical tables; not read)

File names changed between releases, so nothing here matches a fixed string: every NIfTI file under a
subject folder is parsed into BIDS entities (`sub`, `ses`, `space`, and any other key-value pair) and a
suffix, and chosen by them. Sessions compare as numbers (`ses-01`, `ses-1` and `ses-0001` are one
session); suffixes compare case-insensitively, with the lesion mask's spellings (`lesion-msk`,
`lesion_msk`, `lesionmask`, `msk` or `mask` with `label-lesion` or `desc-lesion`) as one. `rawdata`
(BIDS) and `raw_data` (the ISLES'24 release) are both accepted, and so is a flat BIDS folder of sub-*
folders.

Channels (islesbench's names): the inputs are the acute session's (ses 1) maps in NCCT space
(`space-ncct`: CT_CBF, CT_CBV, CT_MTT, CT_Tmax; also CTA and CT_4DPWI) and the NCCT itself (CT: no
`space` entity, it *is* NCCT space); the label (OT) is the follow-up session's (ses 2) lesion mask in
NCCT space. A subject with a label is a TRAINING case, one without a TESTING case. The patient is the
subject, so no pairing is inferred.
"""

from __future__ import annotations

import re
from pathlib import Path

from islesbench.errors import IslesbenchError
from islesbench.imaging.nifti_io import NIFTI_SUFFIXES
from islesbench.layouts.cases import MASK, CaseFiles, data_folder, natural_key

NAME = "isles24"
SOURCE_DIRS = ("raw_data", "rawdata", "derivatives")
ACUTE_SESSION, FOLLOW_UP_SESSION = 1, 2
INPUT_SPACE = "ncct"
# Whole-brain volumes of hundreds of thin slices are resampled to this slice spacing (mm): inside the
# range the ISLES 2018 models were built for (4-12 mm slabs), and a whole brain (~150 mm) is ~38 slices,
# which a 3-D V-Net sees at once on a CPU.
DEFAULT_SLICE_MM = 4.0

SUFFIX_CHANNELS = {
    "ncct": "CT",
    "cta": "CTA",
    "ctp": "CT_4DPWI",
    "cbf": "CT_CBF",
    "cbv": "CT_CBV",
    "mtt": "CT_MTT",
    "tmax": "CT_Tmax",
}
_LESION_SUFFIXES = {"lesion-msk", "lesion_msk", "lesionmsk", "lesion-mask", "lesion_mask", "lesionmask", "lesion"}
_MASK_SUFFIXES = {"msk", "mask", "dseg"}
_ENTITY = re.compile(r"^(?P<key>[a-zA-Z]+)-(?P<value>[a-zA-Z0-9.]+)$")
_SUBJECT_DIR = re.compile(r"^sub-[a-zA-Z0-9]+$")


def parse_bids_name(filename: str) -> tuple[dict, str] | None:
    """(entities, suffix) of a BIDS NIfTI file name, or None when it is not one.

    `sub-01_ses-02_space-ncct_lesion-msk.nii.gz` -> ({"sub": "01", "ses": "02", "space": "ncct"},
    "lesion-msk"): every token but the last is a key-value entity, the last is the suffix (which may
    itself hold a hyphen, as ISLES'24's `lesion-msk` does).
    """
    name = filename
    for ext in (".nii.gz", ".nii"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    else:
        return None
    tokens = name.split("_")
    if len(tokens) < 2:
        return None
    entities = {}
    for token in tokens[:-1]:
        match = _ENTITY.match(token)
        if not match:
            # a suffix written with an underscore ("lesion_msk") leaves a bare token before the last
            if token == tokens[-2] and "sub" in entities:
                return entities, f"{token}_{tokens[-1]}"
            return None
        entities[match["key"].lower()] = match["value"]
    if "sub" not in entities:
        return None
    return entities, tokens[-1]


def session_number(value: str | None) -> int | None:
    """`01`, `1`, `0001` -> 1; a non-numeric session label -> None."""
    if value is None:
        return None
    digits = re.sub(r"\D", "", value)
    return int(digits) if digits else None


def channel_of(entities: dict, suffix: str) -> str | None:
    """islesbench's channel name for a BIDS file, or None for a file that is not an input or label."""
    s = suffix.lower()
    if s in _LESION_SUFFIXES:
        return MASK
    if s in _MASK_SUFFIXES:
        return MASK if "lesion" in (entities.get("label", "").lower(), entities.get("desc", "").lower()) else None
    return SUFFIX_CHANNELS.get(s)


def looks_like(root) -> bool:
    """True when `root` is a BIDS dataset (raw_data/rawdata/derivatives of sub-* folders), or a subject."""
    root = Path(root)
    if not root.is_dir():
        return False
    if _SUBJECT_DIR.match(root.name):
        return True
    roots = [root / d for d in SOURCE_DIRS if (root / d).is_dir()] or [root]
    return any(p.is_dir() and _SUBJECT_DIR.match(p.name) for r in roots for p in r.iterdir())


def _subject_dirs(root: Path) -> dict:
    """subject folder name -> its folders under every source directory (raw data first)."""
    if _SUBJECT_DIR.match(root.name):
        parent = root.parent
        siblings = [parent.parent / d / root.name for d in SOURCE_DIRS] if parent.name in SOURCE_DIRS else []
        found = [p for p in siblings if p.is_dir()] or [root]
        return {root.name: found}
    if root.name in SOURCE_DIRS:  # raw_data/ or derivatives/ given: the dataset is its parent
        root = root.parent
    sources = [root / d for d in SOURCE_DIRS if (root / d).is_dir()] or [root]
    subjects: dict = {}
    for source in sources:
        for p in sorted(source.iterdir()):
            if p.is_dir() and _SUBJECT_DIR.match(p.name):
                subjects.setdefault(p.name, []).append(p)
    return subjects


def discover_cohort(root) -> list[CaseFiles]:
    """Every subject under `root`, its files chosen by BIDS entities (see the module docstring)."""
    root = data_folder(root)
    subjects = _subject_dirs(root)
    cases = [_case_files(name, dirs) for name, dirs in sorted(subjects.items(), key=lambda kv: natural_key(kv[0]))]
    if not cases:
        raise IslesbenchError(
            f"no ISLES'24 (BIDS) subjects found under {root}: expected raw_data/ (or rawdata/) and "
            "derivatives/ folders of sub-<id>/ses-01, ses-02 folders with sub-<id>_ses-<n>[_space-ncct]_<suffix>.nii[.gz] files"
        )
    return cases


def _case_files(subject: str, dirs: list) -> CaseFiles:
    label = subject[len("sub-"):]
    candidates: dict = {}  # channel -> [(rank, path)]; lower rank preferred
    problems = []
    for directory in dirs:
        for path in sorted(directory.rglob("*")):
            if not path.is_file() or not path.name.lower().endswith(NIFTI_SUFFIXES):
                continue
            parsed = parse_bids_name(path.name)
            if parsed is None:
                continue
            entities, suffix = parsed
            if entities["sub"] != label:
                problems.append((str(path), f"file of subject sub-{entities['sub']} inside {subject}"))
                continue
            channel = channel_of(entities, suffix)
            if channel is None:
                continue
            rank = _rank(channel, entities)
            if rank is not None:
                candidates.setdefault(channel, []).append((rank, path))
    files = {}
    for channel, found in sorted(candidates.items()):
        best = min(r for r, _ in found)
        chosen = [p for r, p in found if r == best]
        files[channel] = chosen[0]
        for other in chosen[1:]:
            problems.append((str(other), f"duplicate {channel} file (first one: {chosen[0]})"))
    split = "TRAINING" if MASK in files else "TESTING"
    base = dirs[0]
    expected = {c: _expected(base, subject, c) for c in list(SUFFIX_CHANNELS.values()) + [MASK]}
    return CaseFiles(subject, split, base, files, tuple(problems), layout=NAME, patient=subject, expected=expected)


def _rank(channel: str, entities: dict) -> int | None:
    """How well a file fits a channel (0 best), or None when it is in the wrong session or space."""
    session = session_number(entities.get("ses"))
    space = entities.get("space", "").lower() or None
    if channel == MASK:
        if session not in (FOLLOW_UP_SESSION, None):
            return None
        return 0 if space == INPUT_SPACE else 1 if space is None else None
    if session not in (ACUTE_SESSION, None):
        return None
    if channel == "CT":  # the NCCT defines NCCT space: stored without a space entity (else as space-ncct)
        return 0 if space is None else 1 if space == INPUT_SPACE else None
    # maps, CTA, CTP: only as registered to the NCCT; the raw ones are in CTP/CTA space (another grid)
    return 0 if space == INPUT_SPACE else None


def _expected(base: Path, subject: str, channel: str) -> str:
    root = base.parent.parent if base.parent.name in SOURCE_DIRS else base.parent
    if channel == MASK:
        return f"{root}/derivatives/{subject}/ses-02/{subject}_ses-02_space-{INPUT_SPACE}_lesion-msk.nii[.gz]"
    suffix = {v: k for k, v in SUFFIX_CHANNELS.items()}[channel]
    if channel == "CT":
        return f"{root}/raw_data/{subject}/ses-01/{subject}_ses-01_{suffix}.nii[.gz]"
    return f"{root}/derivatives/{subject}/ses-01/**/{subject}_ses-01_space-{INPUT_SPACE}_{suffix}.nii[.gz]"
