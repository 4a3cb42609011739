"""Experiment configuration: plain dataclasses, named profiles, saved as JSON beside every result.

A configuration's name says what it is (`pspnet-imagenet-focal`, `unet-ce`, `threshold`), so a report
row can always be traced to the config.json that produced it. `--config FILE` (JSON) overrides fields,
nested by section: {"train": {"epochs": 3}, "loss": {"gamma": 1.0}}.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from islesbench.atomic import write_json_atomic
from islesbench.errors import IslesbenchError

ARCHS = ("pspnet", "unet", "vnet", "threshold")
LOSSES = ("focal", "ce", "dice", "focal+dice")
PROFILES = ("quick", "paper")
# train.precision: `auto` resolves per machine (islesbench/runtime/precision.py); the others are Keras policies.
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
# model.weight_gradients: `auto` resolves per machine (islesbench/models/matmul_gradients.py).
WEIGHT_GRADIENTS = ("auto", "native", "matmul")
# train.fraction_steps: what one epoch is when steps_per_epoch is None and a run trains on a share of its patients.
FRACTION_STEPS = ("matched", "proportional")
# The input channels, in order, that every model sees (CTP maps and the CT baseline).
DEFAULT_MODALITIES = ("CT_CBF", "CT_CBV", "CT_MTT", "CT_Tmax", "CT")


@dataclass
class ModelConfig:
    """Which network, how wide and deep, and where its encoder weights come from."""

    arch: str = "pspnet"
    pretrained: str | None = None  # None | "imagenet" | path to a weights file or .keras checkpoint
    base_width: int = 32  # U-Net / V-Net first-stage filters; PSPNet ignores it
    depth: int = 4  # U-Net / V-Net resolution levels
    dropout: float = 0.1  # PSPNet pyramid-pooling head / U-Net bottleneck
    aux_weight: float = 0.0  # PSPNet auxiliary stage-4 head; 0 disables it
    anisotropic: bool = True  # V-Net: in-plane-only kernels and pooling while depth is small
    freeze_encoder_epochs: int = 0  # PSPNet: warm-up epochs with a frozen pretrained encoder
    encoder_width: float = 1.0  # PSPNet: channel multiplier of the ResNet-50 (1.0 = the paper's)
    # PSPNet: how its convolutions' weight gradients are computed (islesbench/models/matmul_gradients.py):
    # "auto" resolves per machine and is stored resolved, as train.precision.
    weight_gradients: str = "auto"


@dataclass
class LossConfig:
    """Training loss; focal is the paper's alpha-balanced binary focal loss."""

    name: str = "focal"
    # alpha weights the lesion class. Lin et al.'s 0.25 suits detection anchors; lesion voxels are ~1 %
    # of a slice, and at 0.25 PSPNet from scratch collapsed to background on the synthetic cohort.
    alpha: float = 0.75
    gamma: float = 2.0


@dataclass
class OptimizerConfig:
    """Adam(W) with a cosine schedule after a short warm-up."""

    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 0


@dataclass
class DataConfig:
    """Model input: channels, in-plane size, slab depth (3D) and augmentation."""

    modalities: tuple = DEFAULT_MODALITIES
    input_size: int = 256  # in-plane side the model sees; divisible by 8
    slab_depth: int = 8  # V-Net: slices per training slab (padded when a case has fewer)
    augment: bool = True
    augment_strength: float = 1.0  # scales intensity/scale jitter; 0 leaves only flips
    lesion_slice_fraction: float = 0.5  # share of 2D training slices drawn from slices with lesion
    # Data-efficiency curves: train on this share of each fold's training patients (a seeded subset, nested
    # across fractions: islesbench/data/fractions.py); validation always uses the whole validation fold.
    train_fraction: float = 1.0
    fraction_seed: int = 0


@dataclass
class TrainConfig:
    """Epochs, batch, seed and validation behaviour."""

    epochs: int = 60
    batch_size: int = 16  # global: split across the replicas of the strategy
    steps_per_epoch: int | None = None  # None: one pass over the training slices
    # With steps_per_epoch None and data.train_fraction < 1: `matched` takes one pass over the fold's whole
    # training set, so every fraction gets the same optimizer steps (a data-efficiency curve varies data, not
    # compute); `proportional` one pass over the share trained on (less data, also fewer steps).
    fraction_steps: str = "matched"
    seed: int = 0
    jit_compile: bool = False
    # float32 | mixed_bfloat16 | mixed_float16 | auto (bfloat16 where the hardware runs it natively:
    # islesbench/runtime/precision.py). A run stores the resolved value, so its config.json says what ran.
    precision: str = "auto"


@dataclass
class ExperimentConfig:
    """Everything that determines one run's numbers."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    profile: str = "paper"
    name_override: str | None = None

    @property
    def name(self) -> str:
        """`pspnet-imagenet-focal`, `pspnet-scratch-ce`, `unet-focal`, `threshold`, ..."""
        if self.name_override:
            return self.name_override
        arch = self.model.arch
        if arch == "threshold":
            return "threshold"
        parts = [arch]
        if arch == "pspnet":
            parts.append(pretrained_tag(self.model.pretrained))
        parts.append(self.loss.name.replace("+", "-"))
        return seeded_name(fraction_name("-".join(parts), self.data.train_fraction), self.train.seed)

    def to_dict(self) -> dict:
        """JSON-ready dict, with the derived name first.

        The training-fraction fields are left out at their defaults (all patients), and train.fraction_steps
        wherever it changes nothing (all patients, or steps_per_epoch set), so the config.json of a run made
        before they existed still matches its configuration (resume, matched-pair checks).
        """
        d = dataclasses.asdict(self)
        if d["data"]["train_fraction"] == 1.0 and d["data"]["fraction_seed"] == 0:
            del d["data"]["train_fraction"], d["data"]["fraction_seed"]
        if self.data.train_fraction >= 1 or self.train.steps_per_epoch:
            del d["train"]["fraction_steps"]
        return {"name": self.name, **d}

    def save(self, path, **extra) -> None:
        """Write the resolved configuration (plus e.g. the fold) as JSON, atomically."""
        write_json_atomic(path, {**self.to_dict(), **extra})

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentConfig":
        """Inverse of to_dict (ignores the derived name and unknown top-level extras like `fold`)."""
        return apply_overrides(cls(), {k: v for k, v in d.items() if k in _field_names(cls)})

    def validate(self) -> "ExperimentConfig":
        """Reject invalid combinations at start, with a clear message."""
        m, lo, d, t = self.model, self.loss, self.data, self.train
        problems = []
        if m.arch not in ARCHS:
            problems.append(f"model.arch must be one of {', '.join(ARCHS)}, not {m.arch!r}")
        if lo.name not in LOSSES:
            problems.append(f"loss.name must be one of {', '.join(LOSSES)}, not {lo.name!r}")
        if self.profile not in PROFILES:
            problems.append(f"profile must be one of {', '.join(PROFILES)}, not {self.profile!r}")
        if t.fraction_steps not in FRACTION_STEPS:
            problems.append(f"train.fraction_steps must be one of {', '.join(FRACTION_STEPS)}, not {t.fraction_steps!r}")
        if t.precision not in PRECISIONS:
            problems.append(f"train.precision must be one of {', '.join(PRECISIONS)}, not {t.precision!r}")
        if m.pretrained and m.arch != "pspnet":
            problems.append(f"--pretrained applies to pspnet only (arch is {m.arch})")
        if resnet50_weights(m.pretrained) and m.encoder_width != 1.0:
            problems.append(
                f"ResNet-50 weights ({m.pretrained}) fit the full-width encoder only, but model.encoder_width is "
                f"{m.encoder_width} (the quick profile's); use --profile paper or override model.encoder_width=1.0")
        if not 0 < m.encoder_width <= 4:
            problems.append(f"model.encoder_width must lie in (0, 4], not {m.encoder_width}")
        if m.weight_gradients not in WEIGHT_GRADIENTS:
            problems.append(f"model.weight_gradients must be one of {', '.join(WEIGHT_GRADIENTS)}, not {m.weight_gradients!r}")
        if m.freeze_encoder_epochs and not m.pretrained:
            problems.append("model.freeze_encoder_epochs needs a pretrained encoder")
        if not 0 < d.train_fraction <= 1:
            problems.append(f"data.train_fraction must lie in (0, 1], not {d.train_fraction}")
        if d.input_size % 8 or d.input_size < 32:
            problems.append(f"data.input_size must be a multiple of 8 and >= 32, not {d.input_size}")
        if not d.modalities:
            problems.append("data.modalities is empty")
        if not 0 <= lo.alpha <= 1:
            problems.append(f"loss.alpha must lie in [0, 1], not {lo.alpha}")
        if lo.gamma < 0:
            problems.append(f"loss.gamma must be >= 0, not {lo.gamma}")
        if t.epochs < 1 or t.batch_size < 1:
            problems.append("train.epochs and train.batch_size must be >= 1")
        if m.arch == "vnet" and d.slab_depth < 1:
            problems.append("data.slab_depth must be >= 1")
        if problems:
            raise IslesbenchError("invalid configuration:\n  - " + "\n  - ".join(problems))
        return self


def pretrained_tag(pretrained: str | None) -> str:
    """`imagenet`, `scratch`, or the weights file's stem for a local file."""
    if not pretrained:
        return "scratch"
    if pretrained == "imagenet":
        return "imagenet"
    return Path(pretrained).name.split(".")[0]


def _field_names(cls) -> set:
    return {f.name for f in dataclasses.fields(cls)}


def apply_overrides(config, overrides: dict):
    """Return `config` with the (possibly nested) `overrides` applied; unknown keys are errors."""
    names = _field_names(type(config))
    changes = {}
    for key, value in overrides.items():
        if key not in names:
            raise IslesbenchError(
                f"unknown configuration field {type(config).__name__}.{key}; known: {', '.join(sorted(names))}"
            )
        current = getattr(config, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = apply_overrides(current, value)
        elif isinstance(current, tuple) and isinstance(value, list):
            changes[key] = tuple(value)
        else:
            changes[key] = value
    return dataclasses.replace(config, **changes)


def profile_config(profile: str, arch: str = "pspnet", pretrained: str | None = None) -> ExperimentConfig:
    """The named profile's defaults for `arch`: `quick` (2-core CPU, about a minute a fold) or `paper` (GPU).

    quick sizes each network to what a CPU trains in ~150 steps: U-Net and V-Net at 64²; PSPNet from
    scratch at 192² with an eighth-width ResNet-50 (its output stride 8 leaves 24x24 logits; the former
    quarter width at 128² cost more per step, and its 16x16 logits missed small lesions outright) and a
    higher learning rate (3e-3). ResNet-50 weight files (ImageNet, RadImageNet) fit the full width only,
    so a PSPNet pretrained from one keeps encoder_width 1.0, at 128² and lr 1e-3 (fine-tuning); a .keras
    checkpoint carries its own width.
    """
    if profile == "quick":
        per_arch = {
            "unet": {"model": {"base_width": 16, "depth": 3}, "data": {"input_size": 64}},
            "vnet": {"model": {"base_width": 8, "depth": 3}, "data": {"input_size": 64, "slab_depth": 8},
                     "train": {"batch_size": 2}},  # 2 slabs of 8: the 16 slices a 2-D step sees
            "pspnet": ({"model": {"encoder_width": 1.0, "pretrained": pretrained},
                        "data": {"input_size": 128}, "optimizer": {"learning_rate": 1e-3}}
                       if resnet50_weights(pretrained) else
                       {"model": {"encoder_width": 0.125, "pretrained": pretrained},
                        "data": {"input_size": 192}, "optimizer": {"learning_rate": 3e-3}}),
            "threshold": {},
        }
        config = ExperimentConfig(
            model=ModelConfig(arch=arch),
            # 150 steps of 16 slices (V-Net: 2 slabs of 8): a fold of the 20-case cohort in about a minute.
            train=TrainConfig(epochs=6, batch_size=16, steps_per_epoch=25),
            optimizer=OptimizerConfig(learning_rate=2e-3),
            profile="quick",
        )
        return apply_overrides(config, per_arch.get(arch, {}))
    if profile == "paper":
        # The paper trains 2-D slices at 256x256 with Adam; epochs, batch and the schedule are not
        # stated and are our choices, documented in the README.
        # Every model sees 256² and 16 slices a step (V-Net: 2 slabs of 8), so that 2-D vs 3-D and
        # pretrained vs scratch are matched pairs (README, "Controlled comparisons").
        per_arch = {"unet": {"model": {"base_width": 32, "depth": 4}},
                    "vnet": {"model": {"base_width": 16, "depth": 4}, "train": {"batch_size": 2},
                             "data": {"slab_depth": 8}}}
        return apply_overrides(ExperimentConfig(model=ModelConfig(arch=arch), profile="paper"), per_arch.get(arch, {}))
    raise IslesbenchError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")


def resnet50_weights(pretrained: str | None) -> bool:
    """ImageNet or a ResNet-50 .h5 file (full width only); an islesbench .keras checkpoint or a folder of
    per-fold pretrained checkpoints (`islesbench pretrain`) carries its own width."""
    return pretrained == "imagenet" or str(pretrained or "").endswith((".h5", ".hdf5"))


def pretrained_source(value: str | None) -> str | None:
    """A --pretrained value as the configuration stores it: None (from scratch) for absent, "none" or "scratch"."""
    return None if (value or "").lower() in ("", "none", "scratch") else value


def command_config(*, profile: str, arch: str, loss: str, pretrained: str | None, seed: int,
                   epochs: int | None = None, name: str | None = None, overrides=()) -> ExperimentConfig:
    """A command's configuration: the profile's defaults for arch, each overrides dict in order (--config,
    --hparams), then the command-line flags; validated."""
    pretrained = pretrained_source(pretrained)
    config = profile_config(profile, arch, pretrained)
    for extra in overrides:
        config = apply_overrides(config, extra)
    flags = {"model": {"arch": arch, "pretrained": pretrained}, "loss": {"name": loss}, "train": {"seed": seed}}
    if epochs:
        flags["train"]["epochs"] = epochs
    if name:
        flags["name_override"] = seeded_name(name, seed)
    return apply_overrides(config, flags).validate()


def seeded_name(name: str, seed: int) -> str:
    """A run name for another seed: `name-seed<k>` (seed 0 keeps the name; repeats get their own folder)."""
    return f"{name}-seed{seed}" if seed else name


def fraction_name(name: str, fraction: float) -> str:
    """A run name for a share of the training patients: `name-frac<f>` (all patients keep the name)."""
    return f"{name}-frac{fraction:g}" if fraction < 1 else name


def base_name(config: dict, fraction: bool = False) -> str:
    """The name of a run's configuration without its seed suffix (what repeats over seeds share), and with
    `fraction` without its training-fraction suffix too (the line of a data-efficiency curve)."""
    name = str(config.get("name", ""))
    seed = (config.get("train") or {}).get("seed") or 0
    if seed:
        name = _without_suffix(name, f"-seed{seed}")
    share = recorded_fraction(config)
    if fraction and share < 1:
        name = _without_suffix(name, f"-frac{share:g}")
    return name


def recorded_fraction(config: dict) -> float:
    """A config.json's share of each fold's training patients (1.0 when not recorded: all of them)."""
    return float((config.get("data") or {}).get("train_fraction", 1.0))


def _without_suffix(name: str, suffix: str) -> str:
    return name[: -len(suffix)] if name.endswith(suffix) else name


def changed_fields(previous: dict, current: dict, ignored=()) -> list:
    """Top-level keys whose values differ between a record read back from JSON and `current` (as JSON stores it)."""
    current = json.loads(json.dumps(current))
    return sorted(k for k in set(previous) | set(current) if k not in ignored and previous.get(k) != current.get(k))


def read_json_file(path, what: str):
    """A user-supplied JSON file's content, with a clear error naming `what` it is when missing or malformed."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise IslesbenchError(f"{what} {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IslesbenchError(f"{what} {path} is not valid JSON: {exc}") from None
    except OSError as exc:  # a folder, no permission, an I/O error
        raise IslesbenchError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None


def load_config_file(path) -> dict:
    """Overrides from a JSON file, with a clear error when it is missing or malformed."""
    data = read_json_file(path, "config file")
    if not isinstance(data, dict):
        raise IslesbenchError(f"config file {path} must hold a JSON object")
    data.pop("name", None)
    return data


def parse_fold(text, num_folds: int | None = None, option: str = "--fold"):
    """`all`, or the fold number `text` names (one of 0..num_folds-1 when `num_folds` is given).

    The one parser of a "fold number or all" option (`run --fold`, `benchmark --fold`, `pretrain
    --exclude-fold`); an IslesbenchError naming `option` otherwise.
    """
    if str(text) == "all":
        return "all"
    try:
        k = int(text)
    except ValueError:
        raise IslesbenchError(f"{option} must be a fold number or `all`, not {text!r}") from None
    if num_folds is not None and not 0 <= k < num_folds:
        raise IslesbenchError(f"{option} {k} is outside 0..{num_folds - 1}")
    return k
