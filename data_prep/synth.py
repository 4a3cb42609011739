"""Synthetic CT-perfusion cohorts in the ISLES 2018 layout or the ISLES'24 BIDS layout (the `islesbench
synth` command is islesbench.commands.synth).

Both layouts come from the same physiology (synth_physiology): ISLES 2018's thin slabs with the acute
core as label (synth_isles2018: `synthesize_cohort`, `make_patient`), or ISLES'24's whole-brain NCCT, CTA
and maps with a follow-up lesion that grows from the acute core into the penumbra (synth_isles24:
`synthesize_isles24`). The same seed gives the same bytes. This module names the ISLES 2018 generator's
entry points and the tissue labels in one place.
"""

from __future__ import annotations

from islesbench.data_prep.synth_isles2018 import (COHORT_FILE, FIRST_FILE_ID, GENERATOR_VERSION,  # noqa: F401
                                                  make_patient, plan_cohort, synthesize_cohort)
from islesbench.data_prep.synth_physiology import (AIR, BONE, CSF, FOV_HALF_MM, GM, SCALP, WM,  # noqa: F401
                                                   SyntheticPatient, make_head, pwi_series, smooth_field)

# The layouts `islesbench synth --layout` can write.
LAYOUTS = ("isles2018", "isles24")

