"""The model a fold trains, compiled: the configured loss, AdamW with a cosine schedule, the Dice metric.

Function-level imports here are keras and the modules that import it (islesbench --help stays fast).
"""

from __future__ import annotations

from islesbench import models
from islesbench.config import ExperimentConfig
from islesbench.runtime import precision


def build_compiled_model(config: ExperimentConfig, input_channels: int, steps_per_epoch: int):
    """Build and compile the configured model (inside the caller's strategy scope)."""
    with precision.policy(config.train.precision):
        # the channels' names: ResNet-50 weights get the caffe-style mapping of each map's window
        model = models.build_from_config(config.model, input_channels, config.data.input_size,
                                         modalities=config.data.modalities)
    compile_model(model, config, steps_per_epoch)
    return model, models.is_3d(config.model.arch)


def cosine_adamw(learning_rate: float, weight_decay: float, total_steps: int, warmup_steps: int = 0):
    """AdamW (its update fused on TensorFlow: `fused_adamw`) with cosine decay to 1 % over `total_steps`,
    after an optional linear warm-up."""
    import keras

    from islesbench.models.fused_adamw import FusedAdamW

    total = max(1, total_steps)
    warmup = min(total - 1, warmup_steps)
    if warmup > 0:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, total - warmup, alpha=0.01, warmup_target=learning_rate, warmup_steps=warmup)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, total, alpha=0.01)
    return FusedAdamW(learning_rate=schedule, weight_decay=weight_decay)


def make_optimizer(config: ExperimentConfig, steps_per_epoch: int):
    """AdamW with cosine decay over the whole run, after an optional linear warm-up."""
    o = config.optimizer
    return cosine_adamw(o.learning_rate, o.weight_decay, config.train.epochs * steps_per_epoch,
                        o.warmup_epochs * steps_per_epoch)


def compile_model(model, config: ExperimentConfig, steps_per_epoch: int) -> None:
    """Compile with the configured loss (and the auxiliary head's weight), AdamW and the Dice metric."""
    from islesbench.models import losses
    from islesbench.models.dice_metric import DiceScore

    loss = losses.get_loss(config.loss.name, alpha=config.loss.alpha, gamma=config.loss.gamma)
    if len(model.outputs) > 1:
        names = model.output_names
        model.compile(optimizer=make_optimizer(config, steps_per_epoch),
                      loss={n: loss for n in names},
                      loss_weights={n: (1.0 if n == "mask" else config.model.aux_weight) for n in names},
                      metrics={"mask": [DiceScore(name="dice")]},
                      jit_compile=config.train.jit_compile)
    else:
        model.compile(optimizer=make_optimizer(config, steps_per_epoch), loss=loss,
                      metrics=[DiceScore(name="dice")], jit_compile=config.train.jit_compile)
    # Without a strategy Keras creates the optimizer's variables inside the first traced train step, and a
    # tf.function that creates variables is traced twice: built here, the step is traced once (seconds a fold).
    model.optimizer.build(model.trainable_variables)
