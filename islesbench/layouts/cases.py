"""What every layout shares: the case model, checking a case's NIfTI files, loading a case.

A layout (islesbench.layouts.isles2018, .isles24) only finds files and names them with islesbench's
channel names (CT, CT_CBF, CT_CBV, CT_MTT, CT_Tmax, CTA, CT_4DPWI, and OT for the lesion mask); the
checks, the repairs and the one-line faults below are the same for every layout.

Repaired silently (the data are unambiguous):

- trailing singleton dimensions: a map stored as (X, Y, Z, 1) is read as (X, Y, Z); a PWI series
  stored as (X, Y, Z, T, 1) as (X, Y, Z, T);
- a mask whose values are zero and one single positive whole number -- {0, 1}, {0, 255}, {0, k},
  float 0./1. -- becomes boolean (value > 0); an all-zero mask is a valid lesion-free mask;
- affines of the modalities that differ by less than AFFINE_ATOL / ORIGIN_ATOL (float32 header
  round-off; islesbench.imaging.nifti_io.affines_agree); the first requested map's affine is the case's;
- a PWI frame interval given in ms or us (xyzt_units) is converted to seconds; a missing one is 1 s.

Rejected, one line per fault "<case>: <file>: <fault>" (validate_case lists them all; load_case raises
CaseError for the first):

- a missing modality (or a missing mask in a TRAINING case), two files for one modality, a modality
  folder without a NIfTI file;
- an unreadable, corrupt or truncated file (fewer bytes than the header promises);
- a wrong number of dimensions (a map that is not 3-D, a PWI series that is not 4-D, after dropping
  trailing singletons), an empty dimension, a non-positive voxel spacing, a non-finite affine or
  scaling factor;
- an orientation that is too oblique to name an axial slice axis (islesbench.imaging.preprocessing);
- a shape or an affine that disagrees with the case's reference map;
- NaN or Inf voxel values;
- a mask with negative values, several distinct positive values (labels or interpolated masks: which
  value is lesion is ambiguous) or a fractional positive value ({0, 0.5}: a probability map; the rule is
  islesbench.imaging.nifti_io.mask_fault, the same for `evaluate`'s reference masks).

Volumes are returned in stored voxel order with the header's scaling applied; reorientation to the
canonical axial orientation happens in islesbench.imaging.preprocessing, which maps every output back.
Single files are read and written by islesbench.imaging.nifti_io (`read_nifti`, `save_nifti`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from islesbench.errors import CaseError, IslesbenchError
from islesbench.imaging import nifti_io
from islesbench.imaging.nifti_io import affines_agree

# islesbench.imaging.preprocessing (SciPy) is imported inside _check_case, to keep `islesbench --help` fast.

# islesbench's channel names (ISLES 2018's modality names, plus CTA); every layout maps its files onto them.
CHANNELS = ("CT", "CTA", "CT_4DPWI", "CT_CBF", "CT_CBV", "CT_MTT", "CT_Tmax", "OT")
MAP_CHANNELS = ("CT", "CT_CBF", "CT_CBV", "CT_MTT", "CT_Tmax")  # the default 3-D inputs
MASK = "OT"
PWI = "CT_4DPWI"


@dataclass(frozen=True)
class CaseFiles:
    """Where one case's files are; `problems` holds layout faults found while discovering it."""

    case_id: str  # "case_12" (ISLES 2018 folder name) or "sub-stroke0001" (BIDS subject)
    split: str  # "TRAINING" or "TESTING" (or "" for a bare case dir)
    directory: Path
    files: dict  # channel -> Path of the .nii / .nii.gz file
    problems: tuple = ()  # (file, fault) pairs: duplicate modality, modality folder without NIfTI
    layout: str = "isles2018"
    patient: str | None = None  # known patient (a BIDS subject); None: inferred from the headers
    expected: dict = field(default_factory=dict, compare=False)  # channel -> where it was looked for

    def expected_path(self, modality: str) -> Path:
        """The path pattern a missing modality was looked for under (for fault messages)."""
        if modality in self.expected:
            return Path(self.expected[modality])
        return self.directory / f"SMIR.Brain.XX.O.{modality}.<ID>"


@dataclass
class Case:
    """One loaded case: float32 volumes with scaling applied, the boolean mask, geometry."""

    case_id: str
    split: str
    volumes: dict  # modality -> float32 ndarray (X, Y, Z) ((X, Y, Z, T) for CT_4DPWI)
    mask: np.ndarray | None  # bool (X, Y, Z), None when not loaded or absent in TESTING
    affine: np.ndarray  # 4x4 float64 of the reference (first map) image
    spacing: tuple  # (sx, sy, sz) in mm, from the header zooms

    @property
    def shape(self) -> tuple:
        """Spatial shape (X, Y, Z) of the case."""
        for volume in self.volumes.values():
            return tuple(volume.shape[:3])
        return tuple(self.mask.shape) if self.mask is not None else ()


def natural_key(name: str) -> list:
    """Sort key that orders case_2 before case_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


# --------------------------------------------------------------------------------------------------
# reading and checking one file


@dataclass
class _FileInfo:
    """What reading one file found: its faults, and (when readable) its geometry and data."""

    path: Path
    faults: list
    shape: tuple = ()
    affine: np.ndarray | None = None
    spacing: tuple = ()
    frame_interval: float = 1.0
    data: np.ndarray | None = None  # float32 scaled, or the raw array for masks


def _inspect(path: Path, kind: str, keep: bool) -> _FileInfo:
    """Read `path` once, as a 'map' (3-D), 'pwi' (4-D) or 'mask'; list what is wrong with it."""
    info = _FileInfo(Path(path), [])
    try:  # header faults (and a truncated .nii) are found here, before any voxel is allocated
        header = nifti_io.read_info(path, ndim=4 if kind == "pwi" else 3)
    except nifti_io.NiftiFileError as exc:
        info.faults.append(exc.fault)
        return info
    info.shape = header.shape
    info.affine, info.spacing = header.affine, header.spacing
    if kind == "pwi":
        info.frame_interval = header.frame_interval
    try:
        raw = nifti_io.read_raw(header)
    except nifti_io.NiftiFileError as exc:
        info.faults.append(exc.fault)
        return info
    slope, inter = header.slope, header.inter
    slope = 1.0 if slope is None else float(slope)
    inter = 0.0 if inter is None else float(inter)
    if raw.dtype.kind in "fc" and not np.all(np.isfinite(raw)):
        bad = int(np.count_nonzero(~np.isfinite(raw)))
        info.faults.append(f"{bad} NaN/Inf voxel value(s)")
        return info
    if kind == "mask":
        fault = _mask_fault(raw, slope, inter)
        if fault:
            info.faults.append(fault)
            return info
        if keep:
            info.data = (raw * slope + inter) > 0 if (slope, inter) != (1.0, 0.0) else raw > 0
        return info
    if keep:
        data = raw.astype(np.float32)
        if (slope, inter) != (1.0, 0.0):
            data = (data * np.float32(slope) + np.float32(inter)).astype(np.float32, copy=False)
        info.data = data
    return info


def _mask_fault(raw: np.ndarray, slope: float, inter: float) -> str | None:
    """Why a mask is not (repairably) binary, or None (the rule: islesbench.imaging.nifti_io.mask_fault)."""
    return nifti_io.mask_fault(raw if (slope, inter) == (1.0, 0.0) else raw * slope + inter)


# --------------------------------------------------------------------------------------------------
# validating and loading a case


def _kind(modality: str) -> str:
    return "pwi" if modality == PWI else "mask" if modality == MASK else "map"


def _check_case(case: CaseFiles, modalities, mask_mode: str, keep: bool) -> tuple[list, dict]:
    """Faults of a case and the per-modality file info; mask_mode is 'require', 'optional' or 'skip'."""
    faults = [f"{case.case_id}: {file}: {fault}" for file, fault in case.problems]
    wanted = list(dict.fromkeys(m for m in modalities if m != MASK))
    if mask_mode == "require" or (mask_mode == "optional" and MASK in case.files):
        wanted.append(MASK)
    unknown = [m for m in wanted if m not in CHANNELS]
    if unknown:
        raise IslesbenchError(f"unknown modality {unknown[0]!r}; known: {', '.join(CHANNELS)}")
    infos: dict = {}
    for modality in wanted:
        path = case.files.get(modality)
        if path is None:
            faults.append(f"{case.case_id}: {case.expected_path(modality)}: missing modality {modality}")
            continue
        info = _inspect(path, _kind(modality), keep)
        faults += [f"{case.case_id}: {path}: {fault}" for fault in info.faults]
        if not info.faults:
            infos[modality] = info
    reference = next((infos[m] for m in wanted if m in infos and _kind(m) == "map"), None)
    if reference is None:
        reference = next(iter(infos.values()), None)
    if reference is not None:
        from islesbench.imaging.preprocessing import orientation_fault  # SciPy

        fault = orientation_fault(reference.affine)
        if fault:
            faults.append(f"{case.case_id}: {reference.path}: {fault}")
        for modality, info in list(infos.items()):
            if info is reference:
                continue
            where = f"{case.case_id}: {info.path}"
            if info.shape[:3] != reference.shape[:3]:
                faults.append(
                    f"{where}: shape {info.shape[:3]} disagrees with {reference.path.name} {reference.shape[:3]}"
                )
                del infos[modality]
            elif not affines_agree(info.affine, reference.affine):
                diff = float(np.max(np.abs(info.affine - reference.affine)))
                faults.append(f"{where}: affine disagrees with {reference.path.name} (max difference {diff:.4g})")
                del infos[modality]
    return faults, infos


def data_folder(root) -> Path:
    """`root` as a Path, or a one-line error when it is missing or not a folder."""
    root = Path(root)
    if not root.exists():
        raise IslesbenchError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise IslesbenchError(f"data path {root} is not a folder")
    return root


def _mask_mode(case: CaseFiles, require_mask: bool | None) -> str:
    if require_mask is None:
        require_mask = case.split == "TRAINING"
    return "require" if require_mask else "optional"


def validate_case(case: CaseFiles, modalities=MAP_CHANNELS, require_mask: bool | None = None) -> list[str]:
    """Fault lines "case_N: <file>: <fault>" for `case`; an empty list means it loads cleanly.

    `require_mask` None requires OT for TRAINING cases only; an OT that is present is always checked.
    Reads every file once (the NaN and mask checks need the values) and keeps none of the data.
    """
    faults, _ = _check_case(case, modalities, _mask_mode(case, require_mask), keep=False)
    return faults


def load_case(case: CaseFiles, modalities=MAP_CHANNELS, with_mask: bool = True) -> Case:
    """Load a case's volumes (float32, scaled, stored voxel order) and mask; CaseError on any fault.

    With `with_mask`, OT is required for TRAINING cases and loaded when present otherwise.
    """
    mode = _mask_mode(case, None) if with_mask else "skip"
    faults, infos = _check_case(case, modalities, mode, keep=True)
    if faults:
        first = faults[0]
        more = f" (and {len(faults) - 1} more fault(s) in this case)" if len(faults) > 1 else ""
        case_id, file, fault = first.split(": ", 2)
        raise CaseError(case_id, file, fault + more)
    volumes = {m: infos[m].data for m in dict.fromkeys(modalities) if m != MASK}
    mask = infos[MASK].data if MASK in infos else None
    reference = next((infos[m] for m in volumes if _kind(m) == "map"), None)
    reference = reference or next(iter(infos.values()), None)
    if reference is None:
        raise IslesbenchError(f"{case.case_id}: no modality requested")
    return Case(
        case_id=case.case_id,
        split=case.split,
        volumes=volumes,
        mask=mask,
        affine=reference.affine.copy(),
        spacing=tuple(reference.spacing),
    )


def load_pwi(case: CaseFiles) -> tuple[np.ndarray, float]:
    """The 4-D perfusion series (X, Y, Z, T) as float32 and the frame interval in seconds."""
    path = case.files.get(PWI)
    if path is None:
        raise CaseError(case.case_id, str(case.expected_path(PWI)), f"missing modality {PWI}")
    info = _inspect(path, "pwi", keep=True)
    if info.faults:
        raise CaseError(case.case_id, str(path), info.faults[0])
    return info.data, info.frame_interval


def load_volume(case: CaseFiles, modality: str) -> tuple[np.ndarray, np.ndarray, tuple]:
    """One channel of a case (float32 map, or bool for OT) with its affine and spacing; CaseError on a fault.

    For streaming: prepare reads a whole-brain case one channel at a time after validate_case has
    checked that the channels agree.
    """
    path = case.files.get(modality)
    if path is None:
        raise CaseError(case.case_id, str(case.expected_path(modality)), f"missing modality {modality}")
    info = _inspect(path, _kind(modality), keep=True)
    if info.faults:
        raise CaseError(case.case_id, str(path), info.faults[0])
    return info.data, info.affine, tuple(info.spacing)
