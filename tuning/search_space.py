"""The tuning search space of every architecture, declared in one place with KerasTuner HyperParameters.

Each entry of `SEARCH_SPACE` names one hyperparameter, the configuration field it sets (see
islesbench.config) and its range per profile; `applies_to` limits it to some architectures or losses.

    name              config field               quick                      paper                     for
    learning_rate     optimizer.learning_rate    1e-4 .. 1e-2 (log)         1e-5 .. 1e-2 (log)        all
    weight_decay      optimizer.weight_decay     1e-6 .. 1e-2 (log)         1e-6 .. 1e-2 (log)        all
    focal_alpha       loss.alpha                 0.1 .. 0.9                 0.1 .. 0.9                focal, focal+dice
    focal_gamma       loss.gamma                 0 .. 4 (step 0.5)          0 .. 4 (step 0.5)         focal, focal+dice
    base_width        model.base_width           {8, 16, 32}                {16, 32, 64}              unet, vnet
    depth             model.depth                2 .. 4                     3 .. 5                    unet, vnet
    ppm_dropout       model.dropout              0 .. 0.5 (step 0.05)       0 .. 0.5 (step 0.05)      pspnet
    augment_strength  data.augment_strength      0 .. 2 (step 0.25)         0 .. 2 (step 0.25)        all
    input_size        data.input_size            {64, 96, 128, 192}         {128, 192, 256}           all

Input sizes larger than the prepared grid are dropped (they only upsample). `space_overrides` (the
`--space FILE` of `islesbench tune`) narrows or fixes entries: a number or string fixes the value, a
list is a choice, {"min": a, "max": b, "step": s, "log": true} a range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from islesbench.config import ExperimentConfig, apply_overrides
from islesbench.errors import IslesbenchError

# KerasTuner imported inside functions only, so that `islesbench --help` and start-up stay fast.

FOCAL_LOSSES = ("focal", "focal+dice")
# Hyperparameters KerasTuner's Hyperband adds to every trial; `tuner/epochs` is the epoch budget.
HYPERBAND_EPOCHS = "tuner/epochs"


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: its config field and its range per profile."""

    target: tuple  # (section, field) in ExperimentConfig
    kind: str  # "float" | "int" | "choice"
    ranges: dict  # profile -> {"min", "max", "step", "log"} or {"values": [...]}
    archs: tuple = ()  # empty: every architecture
    losses: tuple = ()  # empty: every loss

    def applies(self, arch: str, loss: str) -> bool:
        """Whether this hyperparameter means anything for this model/loss pair."""
        return (not self.archs or arch in self.archs) and (not self.losses or loss in self.losses)


def _log(lo, hi):
    return {"min": lo, "max": hi, "log": True}


SEARCH_SPACE = {
    "learning_rate": Param(("optimizer", "learning_rate"), "float",
                           {"quick": _log(1e-4, 1e-2), "paper": _log(1e-5, 1e-2)}),
    "weight_decay": Param(("optimizer", "weight_decay"), "float",
                          {"quick": _log(1e-6, 1e-2), "paper": _log(1e-6, 1e-2)}),
    "focal_alpha": Param(("loss", "alpha"), "float",
                         {p: {"min": 0.1, "max": 0.9, "step": 0.05} for p in ("quick", "paper")},
                         losses=FOCAL_LOSSES),
    "focal_gamma": Param(("loss", "gamma"), "float",
                         {p: {"min": 0.0, "max": 4.0, "step": 0.5} for p in ("quick", "paper")},
                         losses=FOCAL_LOSSES),
    "base_width": Param(("model", "base_width"), "choice",
                        {"quick": {"values": [8, 16, 32]}, "paper": {"values": [16, 32, 64]}},
                        archs=("unet", "vnet")),
    "depth": Param(("model", "depth"), "int",
                   {"quick": {"min": 2, "max": 4}, "paper": {"min": 3, "max": 5}}, archs=("unet", "vnet")),
    "ppm_dropout": Param(("model", "dropout"), "float",
                         {p: {"min": 0.0, "max": 0.5, "step": 0.05} for p in ("quick", "paper")},
                         archs=("pspnet",)),
    "augment_strength": Param(("data", "augment_strength"), "float",
                              {p: {"min": 0.0, "max": 2.0, "step": 0.25} for p in ("quick", "paper")}),
    "input_size": Param(("data", "input_size"), "choice",
                        {"quick": {"values": [64, 96, 128, 192]}, "paper": {"values": [128, 192, 256]}}),
}


def searched_names(arch: str, loss: str) -> list:
    """Names of the hyperparameters searched for this model/loss pair, in declaration order."""
    if arch == "threshold":
        raise IslesbenchError("the threshold baseline has nothing to tune")
    return [name for name, p in SEARCH_SPACE.items() if p.applies(arch, loss)]


def build_search_space(arch: str, loss: str, profile: str, base: ExperimentConfig | None = None,
                       max_input_size: int | None = None, space_overrides: dict | None = None):
    """The KerasTuner `HyperParameters` of this model/loss pair; defaults come from `base` when in range."""
    import keras_tuner

    overrides = dict(space_overrides or {})
    names = searched_names(arch, loss)
    unknown = sorted(set(overrides) - set(SEARCH_SPACE))
    if unknown:
        raise IslesbenchError(f"unknown search-space entries {unknown}; known: {', '.join(SEARCH_SPACE)}")
    hp = keras_tuner.HyperParameters()
    for name in names:
        param = SEARCH_SPACE[name]
        spec = overrides.get(name, param.ranges[profile])
        default = _config_value(base, param.target) if base is not None else None
        _declare(hp, name, param, spec, default, max_input_size)
    return hp


def _config_value(config: ExperimentConfig, target: tuple):
    section, key = target
    return getattr(getattr(config, section), key)


def _declare(hp, name: str, param: Param, spec, default, max_input_size) -> None:
    if not isinstance(spec, (dict, list)):  # a fixed value
        hp.Fixed(name, spec)
        return
    if isinstance(spec, list):
        spec = {"values": spec}
    if "values" in spec:
        values = list(spec["values"])
        if name == "input_size" and max_input_size:
            values = [v for v in values if v <= max_input_size] or [_largest_size(max_input_size)]
        if not values:
            raise IslesbenchError(f"search space {name}: no values")
        hp.Choice(name, values, ordered=all(isinstance(v, (int, float)) for v in values),
                  default=default if default in values else values[0])
        return
    lo, hi = spec["min"], spec["max"]
    if lo > hi:
        raise IslesbenchError(f"search space {name}: min {lo} > max {hi}")
    sampling = "log" if spec.get("log") else "linear"
    inside = default is not None and lo <= default <= hi
    if param.kind == "int":
        hp.Int(name, int(lo), int(hi), step=int(spec.get("step", 1)), sampling=sampling,
               default=int(default) if inside else None)
    else:
        step = spec.get("step")
        if step is not None and inside:
            default = lo + round((default - lo) / step) * step  # KerasTuner wants defaults on the grid
        hp.Float(name, float(lo), float(hi), step=step, sampling=sampling,
                 default=float(default) if inside else None)


def _largest_size(limit: int) -> int:
    return max(32, limit - limit % 8)


def hparams_to_overrides(values, include_budget: bool = True) -> dict:
    """Nested configuration overrides (for islesbench.config.apply_overrides) of a trial's values.

    Accepts a `keras_tuner.HyperParameters` or a plain dict of values. KerasTuner's own bookkeeping
    entries (`tuner/...`) are left out, except Hyperband's epoch budget `tuner/epochs`, which becomes
    train.epochs when `include_budget`.
    """
    values = dict(values if isinstance(values, dict) else values.values)
    nested = {}
    for name, value in values.items():
        if name == HYPERBAND_EPOCHS and include_budget:
            nested.setdefault("train", {})["epochs"] = int(value)
            continue
        if name.startswith("tuner/"):
            continue
        if name not in SEARCH_SPACE:
            raise IslesbenchError(f"hyperparameter {name!r} is not in the islesbench search space")
        section, key = SEARCH_SPACE[name].target
        nested.setdefault(section, {})[key] = plain_value(value)
    return nested


def plain_value(value):
    """JSON-friendly scalars (KerasTuner may hand back numpy numbers)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.6g}")
    return value


def trial_config(base: ExperimentConfig, values) -> ExperimentConfig:
    """The validated configuration one trial trains: `base` with the trial's values applied."""
    return apply_overrides(base, hparams_to_overrides(values)).validate()
