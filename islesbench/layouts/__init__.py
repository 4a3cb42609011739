"""On-disk cohort layouts behind one small interface; everything downstream is layout-blind.

A layout is a module with

    NAME                       "isles2018", "isles24"
    DEFAULT_SLICE_MM           slice spacing prepare resamples to (None: the slice axis is kept)
    looks_like(root) -> bool   does this folder hold the layout?
    discover_cohort(root)      -> [CaseFiles]: per case its id, split, patient (if the layout records
                                  it), and its files under islesbench's channel names (CT, CT_CBF,
                                  CT_CBV, CT_MTT, CT_Tmax, CTA, CT_4DPWI, OT = the lesion mask)

and every layout shares the rest (islesbench.layouts.cases): `validate_case` (all faults, one line
each), `load_case` (the channels as float32 arrays with their affine, the mask if any),
`load_volume` (one channel, for streaming), and `write_prediction` (a mask or probability map back in
the case's own stored geometry and affine, named `<case>.nii.gz`).

`resolve(root, name)` picks the layout: the named one (`--layout`), else the one whose `looks_like`
accepts the folder.

May import: the core, islesbench.imaging, islesbench.storage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from islesbench.errors import IslesbenchError
# NIfTI reading and writing are islesbench.imaging.nifti_io's; re-exported here for callers that read cases.
from islesbench.imaging.nifti_io import read_nifti
from islesbench.imaging.nifti_write import save_nifti
from islesbench.layouts import isles24, isles2018
from islesbench.layouts.cases import (CHANNELS, MAP_CHANNELS, MASK, PWI, Case, CaseFiles, load_case, load_pwi,
                                      load_volume, natural_key, validate_case)

LAYOUTS = {isles2018.NAME: isles2018, isles24.NAME: isles24}
# Detection order: the ISLES 2018 markers (TRAINING/, case_N, SMIR names) are the more specific.
_DETECTION_ORDER = (isles2018, isles24)

__all__ = ["LAYOUTS", "CHANNELS", "MAP_CHANNELS", "MASK", "PWI",
           "Case", "CaseFiles", "load_case", "load_pwi", "load_volume", "natural_key",
           "read_nifti", "save_nifti", "validate_case", "resolve", "discover_cohort", "add_layout_argument",
           "write_prediction", "prediction_name"]


def add_layout_argument(parser) -> None:
    """The `--layout` option every command that reads a raw cohort takes."""
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default=None,
                        help="on-disk layout of the raw cohort; default: detected from the folder")


def resolve(root, name: str | None = None):
    """The layout module named `name`, or the one detected in `root`; one-line error when none fits."""
    if name is not None:
        if name not in LAYOUTS:
            raise IslesbenchError(f"unknown layout {name!r}; known: {', '.join(sorted(LAYOUTS))}")
        return LAYOUTS[name]
    root = Path(root)
    if not root.exists():
        raise IslesbenchError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise IslesbenchError(f"data path {root} is not a folder")
    for layout in _DETECTION_ORDER:
        if layout.looks_like(root):
            return layout
    return isles2018  # the historic default; its "no cases found" line names both layouts


def discover_cohort(root, layout: str | None = None) -> list[CaseFiles]:
    """Every case under `root` in the named or detected layout."""
    return resolve(root, layout).discover_cohort(root)


def prediction_name(case_id: str) -> str:
    """File name of a case's predicted mask in an output folder (every layout: `<case>.nii.gz`)."""
    return f"{case_id}.nii.gz"


def write_prediction(path, array, affine, spacing, probabilities: bool = False) -> None:
    """Write a mask (uint8 0/1) or probability map (float32) in the case's own stored geometry.

    `array` must already be in the stored voxel order of the case's files (islesbench.imaging.preprocessing maps
    canonical outputs back); `affine` and `spacing` are the case's, so the file overlays the input.
    """
    if probabilities:
        save_nifti(path, np.asarray(array, np.float32), affine, spacing)
    else:
        save_nifti(path, np.asarray(array).astype(np.uint8), affine, spacing, dtype=np.uint8)
