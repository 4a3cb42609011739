"""The paper's claims as controlled comparisons: which pairs test them, and whether a pair is matched.

A claim compares two configurations that should differ only in the factor under test (the loss, the
encoder's initialisation, the architecture). The two rows' config.json files are flattened
(`section.field`) and compared; a pair that also differs in anything else (input size, schedule,
optimiser, augmentation, seeds, data, folds) is reported with its differences and is not called a test
of the claim. A pair with a missing side says why (the benchmark's reason), and, when the missing
configuration can be derived, whether the pair would have been matched in this profile at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from islesbench.config import pretrained_tag, recorded_fraction

# Fields that name a run or locate its files: they never make two rows different experiments. train_patients
# follows from the data, folds and fraction (compared), and runs made before it was recorded lack it.
IGNORED_FIELDS = ("name", "name_override", "fold", "raw_data", "prepared", "members", "member_runs",
                  "selection", "kind", "provenance", "train_patients")

# What each factor may change. Architecture comparisons may change the model section and how the
# 16 slices of a step are batched (2-D: 16 slices; V-Net: 2 slabs of 8), nothing else.
FACTORS = {
    "loss": ("loss.name",),
    # the pretraining record (what the encoder was pretrained on) belongs to the initialisation
    "pretraining": ("model.pretrained", "model.freeze_encoder_epochs", "pretraining"),
    "architecture": ("model.arch", "model.base_width", "model.depth", "model.dropout", "model.aux_weight",
                     "model.anisotropic", "model.encoder_width", "train.batch_size", "data.slab_depth"),
}


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


def check_pair(factor: str, a: dict, b: dict, seeds_a=(0,), seeds_b=(0,)) -> PairCheck:
    """Is (a, b) a controlled comparison of `factor`? Lists every difference and the confounders."""
    diffs = config_differences(a, b)
    allowed = FACTORS[factor]
    confounders = [k for k in diffs if k not in allowed]
    if sorted(seeds_a) != sorted(seeds_b):
        confounders.append("seeds")
        diffs["seeds"] = (sorted(seeds_a), sorted(seeds_b))
    differences = [f"{k}: {_short(x)} → {_short(y)}" for k, (x, y) in diffs.items()]
    note = ""
    if factor == "architecture" and not confounders:
        step_a, step_b = slices_per_step(a), slices_per_step(b)
        if step_a != step_b:
            confounders.append("slices per step")
            note = f"{step_a} vs {step_b} slices per step"
    if not any(k in allowed for k in diffs):
        note = note or f"the two configurations do not differ in {factor}"
        return PairCheck(False, differences, confounders or ["(no difference in the factor)"], note)
    return PairCheck(not confounders, differences, confounders, note)


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
