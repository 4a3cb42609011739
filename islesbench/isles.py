"""Deprecated name, kept because the README promised it: the ISLES readers now live in islesbench.layouts
(and NIfTI I/O in islesbench.imaging). Importing this module warns; it goes away in a later release.
Nothing in islesbench imports it (tests/test_layers.py checks).
"""

from __future__ import annotations

import warnings

from islesbench.imaging.nifti_io import AFFINE_ATOL, ORIGIN_ATOL, affines_agree  # noqa: F401
from islesbench.layouts import (MASK, PWI, Case, CaseFiles, discover_cohort, load_case, load_pwi,  # noqa: F401
                                load_volume, natural_key, read_nifti, save_nifti, validate_case)
from islesbench.layouts.isles2018 import MAP_MODALITIES, MODALITIES, SPLITS  # noqa: F401

warnings.warn("islesbench.isles is deprecated: import from islesbench.layouts (NIfTI I/O: islesbench.imaging)",
              DeprecationWarning, stacklevel=2)
