"""The paper's claims as controlled comparisons: which pairs test them, and whether a pair is matched.

A claim compares two configurations that should differ only in the factor under test (the loss, the
encoder's initialisation, the architecture). The two rows' config.json files are flattened
(`section.field`) and compared; a pair that also differs in anything else (input size, schedule,
optimiser, augmentation, seeds, data, folds) is reported with its differences and is not called a test
of the claim. A pair with a missing side says why (the benchmark's reason), and, when the missing
configuration can be derived, whether the pair would have been matched in this profile at all. A pair in
which either row is flagged (islesbench.storage.selection: tuned non-nested, an encoder pretrained on its
validation cases or on unknown data, a flagged ensemble member) is not controlled either: its `leaks` say why.

The configurations say what was asked; each fold's training.json says what the training resolved to
(islesbench.storage.training_facts). A pair is matched only if those agree too (`training_summary`,
`fact_differences`): the same optimizer steps per fold, the same replicas, and about the same share of
lesion in the drawn training slices and voxels; a side whose facts were not recorded is flagged.

A controlled pair's outcome (`claim_outcome`) is "shown" only when the Holm-adjusted p-value is below 0.05 and
the 95 % interval of the mean difference excludes zero on the paper's side; an interval that spans zero is
"not shown", never "does not hold" — absence of evidence is not evidence of absence — unless it also excludes
the difference the paper reports (reports/anchors.py, `PAPER_EFFECTS`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from islesbench.config import pretrained_tag, recorded_fraction
from islesbench.storage import provenance
from islesbench.storage.selection import selection_flags

# Fields that name a run or locate its files: they never make two rows different experiments. train_patients
# follows from the data, folds and fraction (compared), and runs made before it was recorded lack it.
IGNORED_FIELDS = ("name", "name_override", "fold", "raw_data", "prepared", "members", "member_runs",
                  "selection", "kind", "provenance", "provenance_earlier", "train_patients")

# What each factor may change. Architecture comparisons may change the model section and how the
# 16 slices of a step are batched (2-D: 16 slices; V-Net: 2 slabs of 8), nothing else.
FACTORS = {
    "loss": ("loss.name",),
    # the pretraining record (what the encoder was pretrained on) belongs to the initialisation
    "pretraining": ("model.pretrained", "model.freeze_encoder_epochs", "pretraining"),
    "architecture": ("model.arch", "model.base_width", "model.depth", "model.dropout", "model.aux_weight",
                     "model.anisotropic", "model.encoder_width", "train.batch_size", "data.slab_depth"),
}


# Drawn lesion shares further apart than this are a different training diet, not measurement noise (the share
# of 512 drawn slices has a standard error of about 0.02).
SLICE_SHARE_TOLERANCE = 0.1  # absolute difference of the share of drawn axial slices that hold lesion
VOXEL_SHARE_RATIO = 1.5  # ratio of the shares of drawn voxels that are lesion


@dataclass(frozen=True)
class ClaimPair:
    """One claim on one pair of configurations: `first` is the side the paper reports as better."""

    label: str
    factor: str
    first: str
    second: str


@dataclass(frozen=True)
class PairCheck:
    """Whether a pair is a controlled test of its factor, and every field in which it differs."""

    controlled: bool
    differences: list  # "field: a → b" for every differing field
    confounders: list  # the differing fields outside the factor (empty when controlled)
    note: str = ""
    leaks: list = field(default_factory=list)  # "first|second: flag" of a row flagged for its selection or data


def flatten(config: dict, prefix: str = "") -> dict:
    """{"section.field": value} of a config.json, leaving out the fields that only name or locate a run."""
    out = {}
    for key, value in config.items():
        if not prefix and key in IGNORED_FIELDS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key not in ("tuning", "pretraining"):  # compared as a whole
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_differences(a: dict, b: dict) -> dict:
    """field -> (value in a, value in b) for every field in which two configurations differ."""
    fa, fb = flatten(a), flatten(b)
    return {k: (fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}


def check_pair(factor: str, a: dict, b: dict, seeds_a=(0,), seeds_b=(0,), provenance_a=None,
               provenance_b=None, facts=None) -> PairCheck:
    """Is (a, b) a controlled comparison of `factor`? Lists every difference and the confounders.

    `provenance_a`/`provenance_b`, when given, are the provenance records of every fold of every seed of
    each side (`ConfigGroup.provenance_records`): the folds of both must come from one commit, diff hash,
    set of library versions and kind of machine, else the pair is not controlled ("provenance").
    `facts`: the two sides' `training_summary`, compared by `fact_differences` (None: configurations only,
    as for a configuration that did not run).
    """
    diffs = config_differences(a, b)
    allowed = FACTORS[factor]
    confounders = [k for k in diffs if k not in allowed]
    if sorted(seeds_a) != sorted(seeds_b):
        confounders.append("seeds")
        diffs["seeds"] = (sorted(seeds_a), sorted(seeds_b))
    note = ""
    if factor == "architecture" and not confounders:
        step_a, step_b = slices_per_step(a), slices_per_step(b)
        if step_a != step_b:
            confounders.append("slices per step")
            note = f"{step_a} vs {step_b} slices per step"
    if facts is not None:
        for name, values in fact_differences(*facts).items():
            confounders.append(name)
            diffs[name] = values
    differences = [f"{k}: {_short(x)} → {_short(y)}" for k, (x, y) in diffs.items()]
    if provenance_a is not None and provenance_b is not None:
        mixed = provenance_differences(provenance_a, provenance_b)
        if mixed:
            confounders.append("provenance (" + "; ".join(f"{k}: {_values(x)} vs {_values(y)}"
                                                         for k, (x, y) in mixed.items()) + ")")
            differences += [f"provenance.{k}: {_values(x)} → {_values(y)}" for k, (x, y) in mixed.items()]
    leaks = [f"{side}: {flag}" for side, config in (("first", a), ("second", b)) for flag in selection_flags(config)]
    if not any(k in allowed for k in diffs):
        note = note or f"the two configurations do not differ in {factor}"
        return PairCheck(False, differences, confounders or ["(no difference in the factor)"], note, leaks)
    return PairCheck(not confounders and not leaks, differences, confounders, note, leaks)


def provenance_differences(records_a: list, records_b: list) -> dict:
    """field -> (distinct values on side a, on side b) for every compared provenance field
    (`islesbench.storage.provenance.COMPARED_FIELDS`) that takes more than one value over the folds of both
    sides; a fold without a record (None) is 'not recorded'."""
    values_a = [provenance.compared_values(r) for r in records_a]
    values_b = [provenance.compared_values(r) for r in records_b]
    fields = sorted({k for v in values_a + values_b for k in v})
    out = {}
    for name in fields:
        side_a, side_b = _distinct(v.get(name) for v in values_a), _distinct(v.get(name) for v in values_b)
        if len(_distinct(side_a + side_b)) > 1:
            out[name] = (side_a, side_b)
    return out


def _distinct(values) -> list:
    seen = {}
    for v in values:
        seen.setdefault(json.dumps(v, sort_keys=True, default=str), v)
    return list(seen.values())


def _values(values: list) -> str:
    """Distinct provenance values joined by commas, short: commits and hashes cut to 12 characters."""
    def one(v):
        if isinstance(v, str) and len(v) >= 40 and all(c in "0123456789abcdef" for c in v):
            return v[:12]
        if isinstance(v, list):
            return " ".join(map(str, v)) or "none"
        if isinstance(v, dict):
            return " ".join(f"{k}={x}" for k, x in v.items())
        return str(v)
    return ", ".join(one(v) for v in values)


def training_summary(facts: dict) -> dict:
    """One configuration's training facts over its seeds and folds, {(seed, fold): training.json or None}:
    optimizer steps per fold, replicas, the mean drawn lesion shares, and the folds without a record."""
    recorded = {key: f for key, f in facts.items() if isinstance(f, dict)}
    steps, replicas = {}, set()
    for (_, fold), f in recorded.items():
        steps.setdefault(int(fold), set()).add(f.get("optimizer_steps"))
        replicas.add(f.get("replicas"))

    def mean_share(key):
        values = [(f.get("drawn") or {}).get(key) for f in recorded.values()]
        values = [float(v) for v in values if isinstance(v, (int, float))]
        return sum(values) / len(values) if values else None

    return {"unrecorded": sorted(key for key in facts if key not in recorded),
            "optimizer_steps": {fold: sorted(v, key=str) for fold, v in sorted(steps.items())},
            "replicas": sorted(replicas, key=str),
            "lesion_sample_share": mean_share("lesion_sample_share"),
            "lesion_slice_share": mean_share("lesion_slice_share"),
            "lesion_voxel_share": mean_share("lesion_voxel_share")}


def fact_differences(a: dict, b: dict) -> dict:
    """{fact: (a, b)} for every training fact in which two `training_summary`s disagree beyond noise."""
    out = {}
    if a["unrecorded"] or b["unrecorded"]:
        out["training facts"] = tuple(f"not recorded for {len(s['unrecorded'])} fold(s)" if s["unrecorded"]
                                      else "recorded" for s in (a, b))
        return out
    folds = sorted(set(a["optimizer_steps"]) & set(b["optimizer_steps"]))
    steps_a = {k: a["optimizer_steps"][k] for k in folds}
    steps_b = {k: b["optimizer_steps"][k] for k in folds}
    if steps_a != steps_b:
        out["optimizer steps per fold"] = (_per_fold(steps_a), _per_fold(steps_b))
    if a["replicas"] != b["replicas"]:
        out["replicas"] = (a["replicas"], b["replicas"])
    slices_a, slices_b = a["lesion_slice_share"], b["lesion_slice_share"]
    if None in (slices_a, slices_b) or abs(slices_a - slices_b) > SLICE_SHARE_TOLERANCE:
        out["drawn slices with lesion"] = (_share(slices_a), _share(slices_b))
    voxels_a, voxels_b = a["lesion_voxel_share"], b["lesion_voxel_share"]
    if None in (voxels_a, voxels_b) or not _within_ratio(voxels_a, voxels_b, VOXEL_SHARE_RATIO):
        out["drawn lesion voxels"] = (_share(voxels_a, 4), _share(voxels_b, 4))
    return out


def _within_ratio(x: float, y: float, ratio: float) -> bool:
    if x == y:
        return True
    if min(x, y) <= 0 or not (math.isfinite(x) and math.isfinite(y)):
        return False
    return max(x, y) / min(x, y) <= ratio


def _per_fold(steps: dict) -> str:
    return ", ".join(f"fold {k}: {'/'.join(str(v) for v in values)}" for k, values in steps.items())


def _share(value, digits: int = 2) -> str:
    return "unknown" if value is None else f"{value:.{digits}f}"


def slices_per_step(config: dict) -> int:
    """Axial slices one training step sees: the batch, times the slab depth for the 3-D V-Net."""
    batch = int((config.get("train") or {}).get("batch_size") or 0)
    if (config.get("model") or {}).get("arch") == "vnet":
        return batch * int((config.get("data") or {}).get("slab_depth") or 1)
    return batch


def claim_pairs(configs: dict) -> list[ClaimPair]:
    """The paper's claims over the configurations present, {name: config.json}, plus the pairs whose
    partner is absent (so the report can say why they could not be tested)."""
    keyed = {}
    for name, cfg in configs.items():
        model, loss = cfg.get("model") or {}, cfg.get("loss") or {}
        arch = model.get("arch")
        # an imported row has no islesbench config to control (reports/tables.py: cross-framework comparisons)
        if arch in (None, "threshold", "ensemble", "external") or cfg.get("tuning"):
            continue
        if recorded_fraction(cfg) < 1:  # tested per fraction (reports/curve.py)
            continue
        tag = pretrained_tag(model.get("pretrained")) if arch == "pspnet" else None
        keyed.setdefault((arch, tag, loss.get("name")), name)
    losses = sorted({k[2] for k in keyed if k[2]})
    pairs = []

    def add(label, factor, a_key, b_key):
        a, b = keyed.get(a_key), keyed.get(b_key)
        if a or b:
            pairs.append(ClaimPair(label, factor, a or _default_name(*a_key), b or _default_name(*b_key)))

    pretrained_tags = sorted({k[1] for k in keyed if k[0] == "pspnet" and k[1] != "scratch"} | {"imagenet"})
    for loss in losses:
        for tag in pretrained_tags:
            add(f"pretrained ({tag}) > scratch, PSPNet {loss}", "pretraining", ("pspnet", tag, loss),
                ("pspnet", "scratch", loss))
    for arch, tag in sorted({(k[0], k[1]) for k in keyed}, key=lambda k: (k[0], str(k[1]))):
        add(f"focal > CE ({arch}{'-' + tag if tag else ''})", "loss", (arch, tag, "focal"), (arch, tag, "ce"))
    for loss in losses:
        add(f"2-D > 3-D: U-Net vs V-Net ({loss})", "architecture", ("unet", None, loss), ("vnet", None, loss))
        for tag in ("imagenet", "scratch"):
            if ("pspnet", tag, loss) in keyed:
                add(f"PSPNet-{tag} > U-Net ({loss})", "architecture", ("pspnet", tag, loss), ("unet", None, loss))
    return pairs


def _default_name(arch, tag, loss) -> str:
    return "-".join(p for p in (arch, tag, (loss or "").replace("+", "-")) if p)


def _short(value) -> str:
    if isinstance(value, dict) and len(str(value)) > 40:  # a record (e.g. what an encoder was pretrained on)
        return f"{{{len(value)} fields}}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)) and len(str(value)) > 40:
        return f"[{len(value)} items]"
    return str(value)


def claim_outcome(ci, holm_p, alpha: float = 0.05, paper_effect=None) -> str:
    """What a controlled pair says about its claim (the paper reports first > second).

    Args:
        ci: 95 % interval (low, high) of the mean difference first − second, or None.
        holm_p: the Holm-adjusted p-value, or None when there is no test.
        alpha: the family-wise level.
        paper_effect: the paper's difference (reports/anchors.py `Effect`), or None when it states none.

    Returns:
        "shown", "reversed" or "not shown", with the reason; "does not hold at the paper's size" only when the
        interval excludes the paper's difference.
    """
    if ci is None or holm_p is None:
        outcome = "not shown: no test"
    elif holm_p < alpha and ci[0] > 0:
        outcome = "shown: first > second"
    elif holm_p < alpha and ci[1] < 0:
        outcome = "reversed: second > first"
    elif ci[0] <= 0 <= ci[1]:
        outcome = "not shown: the interval spans zero"
    else:
        outcome = f"not shown: p (Holm) ≥ {alpha:g}"
    if paper_effect is not None and ci is not None and not ci[0] <= paper_effect.value <= ci[1]:
        side = "above" if paper_effect.value > ci[1] else "below"
        outcome += (f"; the paper's {paper_effect.text} lies {side} the interval"
                    + (": does not hold at the paper's size" if side == "above" else ""))
    return outcome
