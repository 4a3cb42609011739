"""Training losses by name: focal, cross-entropy, soft Dice and focal + Dice.

All losses take sigmoid probabilities `y_pred` of shape (batch, ..., 1) and binary targets `y_true` of the
same shape, and are serializable (`get_config`), so a compiled model saves and reloads as `.keras`.

Focal loss — the built-in is used, on purpose. The paper's loss is the α-balanced focal loss of Lin et al.
(2017), FL(p_t) = −α_t (1 − p_t)^γ log(p_t), with α_t = α for lesion voxels and 1 − α for background.
Keras 3's `keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=α, gamma=γ)` computes
exactly this (keras/src/losses/losses.py, `binary_focal_crossentropy`, read in Keras 3.15):

    bce          = binary_crossentropy(y_true, y_pred)          # −log(p_t), from the logits when available
    focal_factor = (1 − p_t) ** γ,   p_t = y·p + (1 − y)(1 − p)
    weight       = y·α + (1 − y)(1 − α)                         # only with apply_class_balancing=True
    loss         = mean(weight · focal_factor · bce, axis=-1)

Without `apply_class_balancing=True` the α term is silently dropped (that is the unbalanced form), so
`get_loss("focal")` always sets it. With γ = 0 the loss is the α-weighted cross-entropy (tested). Because the
models end in a float32 `sigmoid` activation, Keras' TensorFlow backend recovers the logits and computes
the log term stably. The result is a per-voxel mean; no normalisation by the number of positives (Lin
et al. normalise by the anchor count, which has no analogue in dense segmentation).

Soft Dice is computed per sample over all voxels, 1 − (2Σpy + s)/(Σp + Σy + s) with s = 1, so a slice
without lesion contributes a loss that pushes its predictions towards 0 rather than a 0/0.
"""

from __future__ import annotations

import keras
from keras import ops

from islesbench.errors import IslesbenchError

LOSS_NAMES = ("focal", "ce", "dice", "focal+dice")


@keras.saving.register_keras_serializable(package="islesbench")
class SoftDiceLoss(keras.losses.Loss):
    """1 − soft Dice per sample (all non-batch axes pooled), averaged over the batch.

    Args:
        smooth: s in 1 − (2Σpy + s)/(Σp + Σy + s), added to numerator and denominator (in voxels).
        name, reduction, dtype: as keras.losses.Loss.

    Call: `loss(y_true, y_pred)` with y_true (B, …, 1) binary targets and y_pred (B, …, 1) sigmoid
    probabilities; returns a scalar in [0, 1] (the batch mean under the default reduction).
    """

    def __init__(self, smooth: float = 1.0, name: str = "dice", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        return soft_dice_loss(y_true, y_pred, self.smooth)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="islesbench")
class FocalDiceLoss(keras.losses.Loss):
    """α-balanced focal loss (per-sample voxel mean) plus `dice_weight` × soft Dice loss.

    Args:
        alpha: weight of lesion voxels in the focal term (1 − alpha for background), in [0, 1].
        gamma: focusing exponent γ of the focal term.
        dice_weight: multiplier of the soft Dice term.
        smooth: the soft Dice term's s (`SoftDiceLoss`).
        name, reduction, dtype: as keras.losses.Loss.

    Call: `loss(y_true, y_pred)` with y_true (B, …, 1) binary targets and y_pred (B, …, 1) sigmoid
    probabilities; returns a non-negative scalar (the batch mean under the default reduction).
    """

    def __init__(
        self,
        alpha: float = 0.25,
        gamma: float = 2.0,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        name: str = "focal_dice",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.dice_weight, self.smooth = float(dice_weight), float(smooth)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        focal = keras.losses.binary_focal_crossentropy(
            y_true, y_pred, apply_class_balancing=True, alpha=self.alpha, gamma=self.gamma
        )
        focal = ops.mean(ops.reshape(focal, (ops.shape(focal)[0], -1)), axis=-1)
        return focal + self.dice_weight * soft_dice_loss(y_true, y_pred, self.smooth)

    def get_config(self):
        return {
            "name": self.name,
            "reduction": self.reduction,
            "alpha": self.alpha,
            "gamma": self.gamma,
            "dice_weight": self.dice_weight,
            "smooth": self.smooth,
        }


def soft_dice_loss(y_true, y_pred, smooth: float = 1.0):
    """Per-sample 1 − soft Dice, all non-batch axes pooled.

    Args:
        y_true: (B, …, 1) binary targets, of y_pred's dtype.
        y_pred: (B, …, 1) sigmoid probabilities.
        smooth: s in 1 − (2Σpy + s)/(Σp + Σy + s), in voxels.

    Returns:
        (B,) losses in [0, 1]; 0 for a sample without lesion predicted empty.
    """
    batch = ops.shape(y_pred)[0]
    p = ops.reshape(y_pred, (batch, -1))
    y = ops.reshape(y_true, (batch, -1))
    intersection = ops.sum(p * y, axis=-1)
    total = ops.sum(p, axis=-1) + ops.sum(y, axis=-1)
    return 1.0 - (2.0 * intersection + smooth) / (total + smooth)


def get_loss(name: str, alpha: float = 0.25, gamma: float = 2.0) -> keras.losses.Loss:
    """The named training loss.

    Args:
        name: one of `LOSS_NAMES` ("focal", "ce", "dice", "focal+dice").
        alpha: weight of lesion voxels in the focal terms (1 − alpha for background), in [0, 1].
        gamma: focusing exponent γ of the focal terms.

    Returns:
        A serializable keras.losses.Loss taking y_true (B, …, 1) binary targets and y_pred (B, …, 1)
        sigmoid probabilities, returning a scalar; an IslesbenchError for an unknown name.
    """
    if name == "focal":
        return keras.losses.BinaryFocalCrossentropy(
            apply_class_balancing=True, alpha=alpha, gamma=gamma, name="focal"
        )
    if name == "ce":
        return keras.losses.BinaryCrossentropy(name="ce")
    if name == "dice":
        return SoftDiceLoss(name="dice")
    if name == "focal+dice":
        return FocalDiceLoss(alpha=alpha, gamma=gamma, name="focal_dice")
    raise IslesbenchError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
