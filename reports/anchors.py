"""The published numbers a report sets beside its own: each one labelled by the data and the split it
was measured on, so that no reader compares a cross-validation number with a test-set number, or a
synthetic cohort with either.

Two sources:

- the paper (Abulnaga & Rubin, BrainLes 2018): 5-fold cross-validation on the 94 ISLES 2018 training
  cases, Dice per configuration, and its ensemble on the training and the test leaderboard;
- the ISLES 2018 challenge (Hakim et al., Stroke 2021): the test leaderboard's best Dice and best AVD
  (different teams) and the organisers' threshold baseline.

The paper's effect sizes (`PAPER_EFFECTS`: pre-training ≈ +0.07 Dice, focal over CE +0.05 on the pretrained
PSPNet) let a claim that is not shown say more: its interval may exclude the paper's effect.

ISLES'24's winning test Dice is kept too, labelled as the different task it is (final infarct on
follow-up DWI from acute CT). Dice, AVD and lesion counts do not depend on an HD/ASSD convention;
an anchor that did would say so in ``convention``.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER = "Abulnaga & Rubin, BrainLes 2018 (arXiv 1811.01085)"
HAKIM = "Hakim et al., Stroke 2021"
ISLES24 = "ISLES'24 challenge results"

ISLES2018_TRAINING_CV = "ISLES 2018 training, 94 cases (63 patients), 5-fold cross-validation"
ISLES2018_TRAINING_LEADERBOARD = "ISLES 2018 training leaderboard (94 cases, 5-fold models)"
ISLES2018_TEST = "ISLES 2018 test set, 62 cases (40 patients), challenge leaderboard"
ISLES24_TEST = "ISLES'24 test set (final infarct from acute CT), challenge leaderboard"


@dataclass(frozen=True)
class Anchor:
    """One published number: what it is, on which data and split, from where."""

    key: str  # stable identifier
    metric: str  # islesbench.evaluation.names.METRIC_NAMES column it compares with
    text: str  # the number as published ("0.54 ± 0.09", "≈ 7 points below pretrained")
    value: float | None  # the number itself where there is one
    what: str  # whose number: a configuration, a team, a baseline
    data: str  # cohort and split
    source: str
    configuration: str | None = None  # the islesbench configuration it anchors, if any
    convention: str | None = None  # HD/ASSD convention, for distance metrics only

    def label(self) -> str:
        """The number with its metric, data and source, for a table cell or a footnote."""
        return f"{self.text} ({self.metric}; {self.what}; {self.data}; {self.source})"


def _paper(configuration: str, text: str, value: float | None) -> Anchor:
    return Anchor(f"paper-cv-{configuration}", "dice", text, value, f"paper, {configuration}",
                  ISLES2018_TRAINING_CV, PAPER, configuration=configuration)


ANCHORS: tuple[Anchor, ...] = (
    _paper("pspnet-imagenet-focal", "0.54 ± 0.09", 0.54),
    _paper("pspnet-imagenet-ce", "0.49 ± 0.11", 0.49),
    _paper("pspnet-scratch-focal", "≈ 7 points below pretrained", None),
    _paper("pspnet-scratch-ce", "≈ 7 points below pretrained", None),
    _paper("unet-focal", "below PSPNet", None),
    _paper("unet-ce", "below PSPNet", None),
    _paper("vnet-focal", "below PSPNet; the 3-D networks did worst", None),
    _paper("vnet-ce", "below PSPNet; the 3-D networks did worst", None),
    Anchor("paper-ensemble-training", "dice", "0.57", 0.57, "paper, ensemble", ISLES2018_TRAINING_LEADERBOARD,
           PAPER, configuration="ensemble"),
    Anchor("paper-ensemble-test", "dice", "0.44", 0.44, "paper, ensemble (ranked 6th on Dice, HD, ASSD; 2nd on AVD)",
           ISLES2018_TEST, PAPER, configuration="ensemble"),
    Anchor("isles2018-test-best-dice", "dice", "0.51", 0.51, "best team on Dice", ISLES2018_TEST, HAKIM),
    Anchor("isles2018-test-best-avd", "avd_ml", "10.1 mL", 10.1, "best team on AVD (not the best-Dice team)",
           ISLES2018_TEST, HAKIM),
    Anchor("isles2018-test-threshold-dice", "dice", "0.30", 0.30, "threshold baseline", ISLES2018_TEST, HAKIM,
           configuration="threshold"),
    Anchor("isles2018-test-threshold-avd", "avd_ml", "15.3 mL", 15.3, "threshold baseline", ISLES2018_TEST, HAKIM,
           configuration="threshold"),
    Anchor("isles24-test-winner-dice", "dice", "0.285 ± 0.213", 0.285, "winning entry (nnU-Net ResEnc-L)",
           ISLES24_TEST, ISLES24),
)


@dataclass(frozen=True)
class Effect:
    """A difference the paper reports between two configurations (first − second, Dice)."""

    first: str
    second: str
    value: float
    text: str  # how the paper states it
    data: str = ISLES2018_TRAINING_CV
    source: str = PAPER


PAPER_EFFECTS: tuple[Effect, ...] = (
    Effect("pspnet-imagenet-focal", "pspnet-scratch-focal", 0.07, "+0.07 (pre-training added about 7 Dice points)"),
    Effect("pspnet-imagenet-ce", "pspnet-scratch-ce", 0.07, "+0.07 (pre-training added about 7 Dice points)"),
    Effect("pspnet-imagenet-focal", "pspnet-imagenet-ce", 0.05, "+0.05 (0.54 − 0.49)"),
)


def paper_effect(first: str, second: str) -> Effect | None:
    """The paper's difference between two configurations (by name), or None when it states no number."""
    return next((e for e in PAPER_EFFECTS if (e.first, e.second) == (first, second)), None)


def anchor(key: str) -> Anchor:
    """The anchor with this key (KeyError naming the known keys otherwise)."""
    for a in ANCHORS:
        if a.key == key:
            return a
    raise KeyError(f"no anchor {key!r}; known: {', '.join(a.key for a in ANCHORS)}")


def paper_cv_anchor(configuration: str, is_ensemble: bool = False) -> Anchor | None:
    """The paper's cross-validation number for a configuration name (its training-leaderboard number
    for an ensemble), or None when the paper has none."""
    if is_ensemble:
        return anchor("paper-ensemble-training")
    return next((a for a in ANCHORS if a.key == f"paper-cv-{configuration}"), None)


def challenge_anchors(dataset: str = "isles2018") -> list[Anchor]:
    """The test-leaderboard numbers of a challenge (``isles2018`` or ``isles24``), paper's ensemble included."""
    data = {"isles2018": ISLES2018_TEST, "isles24": ISLES24_TEST}[dataset]
    return [a for a in ANCHORS if a.data == data]
