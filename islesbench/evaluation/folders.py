"""ISLES metrics of predicted masks against reference masks, per case and aggregated (`evaluate_folder`; the
`islesbench evaluate` command is islesbench.commands.evaluate).

Predictions: a folder of `<case>.nii.gz` or `<case>.nii` masks (probability maps `<case>_prob.nii*` are
ignored; a prediction that is itself a probability map is thresholded: lesion where value >= threshold,
as `islesbench run` writes its masks). References:
either a flat folder of `<case>.nii[.gz]` masks or a cohort: an ISLES 2018 layout (the dataset root or its
TRAINING folder), whose OT files are the masks, or an ISLES'24 BIDS layout, whose ses-02 lesion masks
are (islesbench.layouts; `layout` names it, else it is detected). Cases are matched by name; every prediction must have
a reference and, unless only_predicted, every reference a prediction. Each pair must have the same
shape and affine; spacing comes from the reference header.

Writes OUT/metrics.csv (one row per case) and OUT/summary.json (means, standard deviations, medians and
counts of infinite values per metric). hd and assd follow `convention`: `isles`
(default), the ISLES 2015–2018 evaluator's own definitions, or `medpy`; both files record which. See `islesbench.evaluation.metrics` for the
definitions and the empty-mask conventions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from islesbench.errors import CaseError, CohortError, IslesbenchError
from islesbench.evaluation.files import write_case_metrics
from islesbench.evaluation.names import check_convention
from islesbench.imaging import nifti_io
from islesbench.layouts import discover_cohort

# islesbench.evaluation.metrics (SciPy) is imported inside evaluate_pair, to keep `islesbench --help` fast.

METRICS_CSV = "metrics.csv"
SUMMARY_JSON = "summary.json"


@dataclass(frozen=True)
class CasePair:
    """A prediction file and its reference mask file.

    Attributes:
        case_id: the case name both files are matched by.
        pred: the predicted (X, Y, Z) mask or probability map, .nii or .nii.gz.
        ref: the reference (X, Y, Z) mask, .nii or .nii.gz.
    """

    case_id: str
    pred: Path
    ref: Path


def evaluate_folder(
    pred_dir, ref_dir, out_dir, *, threshold: float = 0.5, only_predicted: bool = False, cases=None, log=print,
    layout: str | None = None, convention: str = "isles",
) -> dict:
    """Metrics of every prediction in a folder against its reference, written as metrics.csv and summary.json.

    Args:
        pred_dir: folder of predicted `<case>.nii[.gz]` masks or probability maps.
        ref_dir: folder of reference `<case>.nii[.gz]` masks, or a cohort (`reference_masks`).
        out_dir: where metrics.csv and summary.json are written.
        threshold: a prediction voxel is lesion where its value is >= this (unitless, as stored).
        only_predicted: evaluate only the references that have a prediction instead of failing.
        cases: restrict the evaluation to these case names (each must have a prediction and a reference).
        log: receives one progress line per case; None for silence.
        layout: the cohort layout of `ref_dir` ("isles2018", "isles24"); None detects it.
        convention: the definition of hd and assd (`islesbench.evaluation.names.CONVENTIONS`), recorded in
            every row and the summary.

    Returns:
        The summary (`islesbench.evaluation.files.write_case_metrics`): per metric statistics over the
        cases in the metric's unit (mm, mL, ratios, counts), plus pred_dir, ref_dir and threshold.
    """
    check_convention(convention)

    pairs = match_cases(pred_dir, ref_dir, only_predicted=only_predicted, cases=cases, layout=layout)
    if not pairs:
        raise IslesbenchError(f"no predictions to evaluate in {pred_dir}")
    check_geometry(pairs)
    rows = []
    for i, pair in enumerate(pairs, 1):
        row = {"case": pair.case_id, **evaluate_pair(pair, threshold, convention)}
        rows.append(row)
        if log is not None:
            log(
                f"[{i}/{len(pairs)}] {pair.case_id}: dice={row['dice']:.4f} hd={row['hd']:.2f} "
                f"assd={row['assd']:.2f} ({convention}) nsd@2mm={row['nsd_2mm']:.3f} avd={row['avd_ml']:.2f} mL "
                f"lesions tp/fp/fn={row['lesion_tp']}/{row['lesion_fp']}/{row['lesion_fn']}"
            )
    out_dir = Path(out_dir)
    extra = {"pred_dir": str(pred_dir), "ref_dir": str(ref_dir), "threshold": float(threshold)}
    return write_case_metrics(rows, out_dir / METRICS_CSV, out_dir / SUMMARY_JSON, extra_summary=extra)


def evaluate_pair(pair: CasePair, threshold: float = 0.5, convention: str = "isles") -> dict:
    """The metrics of one matched pair, the spacing taken from the reference header.

    Args:
        pair: the prediction and reference files, both (X, Y, Z) with the same geometry.
        threshold: a prediction voxel is lesion where its value is >= this.
        convention: the definition of hd and assd (`islesbench.evaluation.names.CONVENTIONS`).

    Returns:
        `islesbench.evaluation.metrics.case_metrics` of the pair: distances in mm, volumes in mL. A CaseError
        naming the reference when it is not a binary mask (`islesbench.imaging.nifti_io.mask_fault`).
    """
    from islesbench.evaluation.metrics import case_metrics

    ref = _read_values(pair, pair.ref)
    fault = nifti_io.mask_fault(ref)
    if fault:
        raise CaseError(pair.case_id, str(pair.ref), fault)
    pred = _read_values(pair, pair.pred)
    spacing = nifti_io.read_info(pair.ref).spacing
    return case_metrics(pred >= threshold, ref != 0, tuple(float(z) for z in spacing[: ref.ndim]), convention)


def _read_values(pair: CasePair, path: Path):
    """A mask's values (scaled float32), 3-D; CaseError naming the file on any fault."""
    try:
        info = nifti_io.read_info(path, ndim=3)
        values = nifti_io.scaled(info, nifti_io.read_raw(info))
    except nifti_io.NiftiFileError as exc:
        raise CaseError(pair.case_id, str(path), exc.fault) from None
    if not np.all(np.isfinite(values)):
        raise CaseError(pair.case_id, str(path), f"{int(np.count_nonzero(~np.isfinite(values)))} NaN/Inf value(s)")
    return values


def match_cases(pred_dir, ref_dir, *, only_predicted: bool = False, cases=None, layout: str | None = None) -> list[CasePair]:
    """The prediction/reference pairs of two folders, matched by case name.

    Args:
        pred_dir: folder of predicted `<case>.nii[.gz]` files (`<case>_prob` maps are ignored).
        ref_dir: folder of reference masks or a cohort (`reference_masks`).
        only_predicted: skip references without a prediction instead of failing.
        cases: only these case names, each of which must have both files.
        layout: the cohort layout of `ref_dir`; None detects it.

    Returns:
        The pairs in natural case order; an IslesbenchError listing every unmatched case.
    """
    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    if not pred_dir.is_dir():
        raise IslesbenchError(f"prediction folder {pred_dir} does not exist")
    if not ref_dir.is_dir():
        raise IslesbenchError(f"reference folder {ref_dir} does not exist")
    preds = _nifti_files_by_case(pred_dir)
    refs = reference_masks(ref_dir, layout)

    if cases is not None:
        wanted = sorted(set(map(str, cases)), key=_case_sort_key)
        faults = [f"{c}: no prediction in {pred_dir}" for c in wanted if c not in preds]
        faults += [f"{c}: no reference in {ref_dir}" for c in wanted if c not in refs]
        if faults:
            raise IslesbenchError(_fault_list("requested case(s) missing", faults))
        return [CasePair(c, preds[c], refs[c]) for c in wanted]

    no_ref = sorted(set(preds) - set(refs), key=_case_sort_key)
    if no_ref:
        raise IslesbenchError(_fault_list(f"prediction(s) without a reference in {ref_dir}", no_ref))
    no_pred = sorted(set(refs) - set(preds), key=_case_sort_key)
    if no_pred and not only_predicted:
        raise IslesbenchError(
            _fault_list(f"reference(s) without a prediction in {pred_dir} (use --only-predicted to skip them)", no_pred)
        )
    return [CasePair(c, preds[c], refs[c]) for c in sorted(preds, key=_case_sort_key)]


def reference_masks(ref_dir, layout: str | None = None) -> dict[str, Path]:
    """The reference masks of a folder.

    Args:
        ref_dir: a flat folder of `<case>.nii[.gz]` masks, or a cohort in a layout of islesbench.layouts
            (its OT files are the masks; an ISLES'24 subject without one is a test subject and skipped).
        layout: the cohort's layout name; None detects it.

    Returns:
        {case id: mask path}; an IslesbenchError when a case lacks its mask or there are none.
    """
    ref_dir = Path(ref_dir)
    flat = _nifti_files_by_case(ref_dir)
    if flat:
        return flat
    refs, faults = {}, []
    for case in (discover_cohort(ref_dir, layout) if layout else discover_cohort(ref_dir)):
        mask = case.files.get("OT")
        if mask is None and getattr(case, "layout", None) == "isles24":
            continue  # a BIDS subject without a follow-up mask is a test subject, not a missing file
        if mask is None:
            faults.append(f"{case.case_id}: no OT (ground truth) file")
        else:
            refs[case.case_id] = Path(mask)
    if faults:
        raise IslesbenchError(_fault_list(f"case(s) in {ref_dir} without a reference mask", faults))
    if not refs:
        raise IslesbenchError(f"no reference masks in {ref_dir} (neither <case>.nii[.gz] files nor an ISLES layout)")
    return refs


def check_geometry(pairs: list[CasePair]) -> None:
    """Check that each prediction overlays its reference, reading headers only.

    Args:
        pairs: the matched files; each must be a readable 3-D NIfTI (trailing singleton axes dropped).

    Returns:
        None when every pair has the same (X, Y, Z) shape and affines that agree within
        `islesbench.imaging.nifti_io.affines_agree`'s tolerances (mm); else raises a CaseError (one
        faulty pair) or a CohortError listing every fault.
    """
    faults = []
    for pair in pairs:
        try:  # headers only: every bad file of the cohort is listed before any volume is read
            pred_img = nifti_io.read_info(pair.pred, ndim=3)
            ref_img = nifti_io.read_info(pair.ref, ndim=3)
        except nifti_io.NiftiFileError as exc:
            faults.append(CaseError(pair.case_id, str(exc.path), exc.fault))
            continue
        pred_shape, ref_shape = _spatial_shape(pred_img.shape), _spatial_shape(ref_img.shape)
        if pred_shape != ref_shape:
            faults.append(CaseError(pair.case_id, str(pair.pred), f"shape {pred_shape} differs from the reference's {ref_shape} ({pair.ref})"))
        elif not nifti_io.affines_agree(pred_img.affine, ref_img.affine):
            diff = float(np.abs(pred_img.affine - ref_img.affine).max())
            faults.append(CaseError(pair.case_id, str(pair.pred), f"affine differs from the reference's by up to {diff:.4g} ({pair.ref})"))
    if len(faults) == 1:
        raise faults[0]
    if faults:
        raise CohortError([str(f) for f in faults])


def prediction_files(folder) -> dict[str, Path]:
    """case id -> path of every `<case>.nii[.gz]` directly in `folder`, as `evaluate` matches them.

    Args:
        folder: a folder of predicted masks or probability maps (hidden files and `<case>_prob` maps are
            ignored; other files, such as nnU-Net's summary.json, are not NIfTI names and skipped).

    Returns:
        {case id: path}; an IslesbenchError when one case has two files.
    """
    return _nifti_files_by_case(Path(folder))


def _nifti_files_by_case(folder: Path) -> dict[str, Path]:
    """case id -> path of every `<case>.nii[.gz]` directly in `folder` (no hidden files, no `_prob` maps)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        case_id = _case_id(path.name)
        if case_id is None or case_id.endswith("_prob"):
            continue
        if case_id in found:
            raise IslesbenchError(f"{case_id}: two files in {folder}: {found[case_id].name} and {path.name}")
        found[case_id] = path
    return found


def _case_id(filename: str) -> str | None:
    for suffix in nifti_io.NIFTI_SUFFIXES:
        if filename.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    return None


def _spatial_shape(shape) -> tuple:
    """The shape without trailing singleton axes beyond the third (NIfTI masks are sometimes (X,Y,Z,1))."""
    shape = tuple(int(n) for n in shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def _spatial(data):
    return data.reshape(_spatial_shape(data.shape))


def _case_sort_key(case_id: str):
    """Natural order: case_2 before case_10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", case_id)]


def _fault_list(title: str, items) -> str:
    items = list(items)
    return f"{len(items)} {title}:\n" + "\n".join(f"  - {i}" for i in items)
