"""Compatibility: the ISLES 2018 reader that lived here is now islesbench.layouts (see there).

`discover_cohort` detects the layout (ISLES 2018 or ISLES'24 BIDS), so older callers read both;
`load_case`, `validate_case`, `load_pwi`, `read_nifti` and `save_nifti` are layout-independent.
"""

from __future__ import annotations

from islesbench.layouts import (AFFINE_ATOL, ORIGIN_ATOL, Case, CaseFiles, affines_agree, discover_cohort,  # noqa: F401
                                load_case, load_pwi, load_volume, natural_key, read_nifti, save_nifti,
                                validate_case)
from islesbench.layouts.cases import MASK, PWI  # noqa: F401
from islesbench.layouts.isles2018 import MAP_MODALITIES, MODALITIES, SPLITS  # noqa: F401
