"""How every network starts: the classifier's bias at the lesion prior, residual branches at zero.

Both are standard remedies for slow early training, and both mattered on CPU budgets of ~150 steps (fold 0
of the 24-case synthetic cohort, quick profile; see the README's "Training from scratch"):

- Prior bias (Lin et al., 2017, §4.1): lesion pixels are ~1 % of a slice. With a zero bias every pixel starts
  at p = 0.5, the loss of the ~99 % background dominates the first steps and training spends them pushing all
  outputs down. Starting at p = LESION_PRIOR removes that phase; focal loss needs it most, as its (1 − p)^γ
  factor leaves the rare foreground pixels little gradient while the background is still wrong.
- Zero-γ residual blocks (Goyal et al., 2017, §5.1): the last BatchNormalization of each ResNet bottleneck
  starts with γ = 0, so every block starts as the identity and the 16-block encoder trains like a shallow
  one first. Pretrained weights (ImageNet, a ResNet-50 file, a checkpoint) overwrite γ, so only training from
  scratch is affected.
"""

from __future__ import annotations

import keras
import numpy as np

LESION_PRIOR = 0.01
RESIDUAL_GAMMA = "zeros"  # gamma_initializer of a residual branch's last BatchNormalization


def prior_bias(prior=LESION_PRIOR):
    """Bias initialiser for a sigmoid logit so that every pixel starts at P(lesion) = prior.

    Args:
        prior: a probability in (0, 1), or (K,) probabilities, one per output channel.

    Returns:
        A keras.initializers.Constant of the logit log(p / (1 − p)) (a scalar or (K,) list); a
        ValueError for a prior outside (0, 1).
    """
    p = np.asarray(prior, dtype="float64")
    if not ((0.0 < p) & (p < 1.0)).all():
        raise ValueError(f"prior must be in (0, 1), not {prior}")
    return keras.initializers.Constant((-np.log((1.0 - p) / p)).tolist())
