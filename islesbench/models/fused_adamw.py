"""AdamW whose Adam update is one fused kernel per variable on TensorFlow: `FusedAdamW`.

Keras' Adam writes its update in `keras.ops`: about a dozen element-wise ops per variable (subtract,
multiply, square, sqrt, divide, three assignments, …), each a pass over the float32 weights and moments. On a CPU
those passes add up: 0.27 s of the paper PSPNet's 6.6 s bfloat16 training step (25 M weights), measured by
op on a 2-core AMX CPU. TensorFlow's ResourceApplyAdam does the same update in one pass:

    alpha = lr · sqrt(1 − β₂ᵗ) / (1 − β₁ᵗ);  m += (g − m)(1 − β₁);  v += (g² − v)(1 − β₂);  w −= m · alpha / (sqrt(v) + ε)

which is Keras' formula term for term. Weight decay stays Keras' own (applied before the update), and the
optimizer's variables, names and config are AdamW's (a checkpoint names the class it was saved with). Other backends,
AMSGrad, non-float32 variables and runs under a tf.distribute strategy (whose update context Keras manages)
take Keras' update. Floating-point contraction inside the fused kernel may round the last bit differently.
It lives with the models because a .keras checkpoint holds its optimizer (`saving.load_checkpoint`).
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="islesbench")
class FusedAdamW(keras.optimizers.AdamW):
    """keras.optimizers.AdamW with TensorFlow's fused Adam kernel for the update.

    Args:
        **kwargs: as keras.optimizers.AdamW (learning_rate, weight_decay, beta_1, beta_2, epsilon, …).
    """

    def _fused(self, gradient, variable) -> bool:
        if keras.backend.backend() != "tensorflow" or self.amsgrad or variable.dtype != "float32":
            return False
        import tensorflow as tf

        return not tf.distribute.has_strategy() and not isinstance(gradient, tf.IndexedSlices)

    def update_step(self, gradient, variable, learning_rate):
        if not self._fused(gradient, variable):
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        # Keras' Adam keeps one momentum and one velocity per variable, found by this index (its subclass contract).
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        local_step = ops.cast(self.iterations + 1, "float32")
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.handle, v=v.handle,
            beta1_power=ops.power(ops.cast(self.beta_1, "float32"), local_step),
            beta2_power=ops.power(ops.cast(self.beta_2, "float32"), local_step),
            lr=ops.cast(learning_rate, "float32"), beta1=ops.cast(self.beta_1, "float32"),
            beta2=ops.cast(self.beta_2, "float32"), epsilon=ops.cast(self.epsilon, "float32"),
            grad=ops.cast(gradient, "float32"), use_locking=False)
