"""The metric vocabulary: per-case metric names, the HD/ASSD conventions and the empty-mask rules.

Light on purpose (no SciPy): computing (`islesbench.evaluation.metrics`), aggregating
(`islesbench.evaluation.aggregate`), the metric files (`islesbench.evaluation.files`) and the reports
all name metrics and conventions from here.
"""

from __future__ import annotations

from islesbench.errors import IslesbenchError

# The HD/ASSD conventions: the ISLES 2015–2018 evaluator's, and medpy 0.5.2's (connectivity 3).
CONVENTIONS = ("isles", "medpy")
DEFAULT_CONVENTION = "isles"
CONVENTION_LABELS = {
    "isles": "ISLES 2015–2018 evaluator (validateLabelImages-ISLES: ITK/VTK HD and ASSD)",
    "medpy": "medpy 0.5.2, connectivity 3 (26-connected surfaces)",
}

# The per-case metrics, in the order of the metrics.csv columns (after `case`; `convention` follows).
METRIC_NAMES = (
    "dice",
    "precision",
    "recall",
    "hd",
    "hd95",
    "assd",
    "assd_pooled",
    "nsd_1mm",
    "nsd_2mm",
    "avd_ml",
    "avd_rel",
    "ref_volume_ml",
    "pred_volume_ml",
    "lesion_tp",
    "lesion_fp",
    "lesion_fn",
    "lesion_f1",
    "lesion_count_diff",
    "lesion_f1_iou50",
    "lesion_f1_iou20",
)
# The three lesion F1s and the rule each follows (islesbench.evaluation.lesions).
LESION_F1_LABELS = {
    "lesion_f1": "ISLES'22 rule: a lesion is found when any predicted voxel touches it",
    "lesion_f1_iou50": "ISLES'24 as scored in the 2024 challenge: one-to-one matches at IoU >= 0.5 "
                       "(organisers' script at 34c6637)",
    "lesion_f1_iou20": "ISLES'24 organisers' script since 2025-12-16: one-to-one matches at IoU >= 0.2 (94b3486)",
}
# Metrics in millimetres that are infinite when exactly one mask is empty.
DISTANCE_METRICS = ("hd", "hd95", "assd", "assd_pooled")
# Metrics whose definition depends on the convention.
CONVENTION_METRICS = ("hd", "assd")
# Metrics that are whole counts (written and read back as integers).
COUNT_METRICS = ("lesion_tp", "lesion_fp", "lesion_fn", "lesion_count_diff")
# The column (and summary field) naming the convention of a row's hd and assd.
CONVENTION_KEY = "convention"

# The convention of rows that name none (files written before conventions existed).
LEGACY_CONVENTION = "medpy"

EMPTY_CONVENTIONS = {
    "both_empty": "dice, precision, recall, nsd, lesion_f1, lesion_f1_iou50, lesion_f1_iou20 = 1; hd, hd95, assd, assd_pooled, avd = 0",
    "one_empty": "dice, precision, recall, nsd = 0; hd, hd95, assd, assd_pooled = inf; avd_rel = inf if the reference is empty",
}


def check_convention(convention: str) -> str:
    """A checked HD/ASSD convention name.

    Args:
        convention: the name to check, one of `CONVENTIONS`.

    Returns:
        `convention` unchanged; an IslesbenchError naming the choices when it is not one of them.
    """
    if convention not in CONVENTIONS:
        raise IslesbenchError(f"unknown metric convention {convention!r}: choose one of {', '.join(CONVENTIONS)}")
    return convention
