"""CRReLU, Correction Regularized ReLU: `relu(x) + epsilon * x * exp(-x**2 / 2)`.

Paper: Sun, Wu, Xia, Chang, Dong, Yuan, Chang, Wang, "A Method on Searching Better Activation
Functions" (ICLR 2025: "Entropy-based Activation Function Optimization"), arXiv 2405.12954.
"""

from typing import Any

import keras
from keras import constraints, initializers, ops, regularizers

from keras_norms.arguments import check_bool, check_number
from keras_norms.ops import activations as activation_ops
from keras_norms.ops.dtypes import to_floating
from keras_norms.ops.types import ConstraintLike, InitializerLike, RegularizerLike, Shape, Tensor


@keras.saving.register_keras_serializable(package="keras_norms")
def crrelu(x: Tensor, epsilon: float = 0.01) -> Tensor:
    """CRReLU with a fixed `epsilon`: `relu(x) + epsilon * x * exp(-x**2 / 2)`.

    Usable wherever Keras takes an activation (`Dense(64, activation=keras_norms.activations.crrelu)`).
    Use the `CRReLU` layer for a learnable `epsilon`. Paper: arXiv 2405.12954.

    Example:

    >>> y = keras_norms.activations.crrelu(keras.ops.array([-1.0, 0.5, 1.0, 2.0]))
    >>> # [-0.00606531, 0.50441248, 1.00606531, 2.00270671]
    """
    epsilon = check_number("epsilon", epsilon)
    x = to_floating(ops.convert_to_tensor(x), keras.config.floatx())  # integer input: floatx
    # A Python float keeps x's dtype on every backend; ops.cast(0.3, "float64") rounds through float32.
    return activation_ops.crrelu(x, epsilon)


@keras.saving.register_keras_serializable(package="keras_norms")
class CRReLU(keras.layers.Layer):
    """CRReLU with a learnable scalar `epsilon`: `relu(x) + epsilon * x * exp(-x**2 / 2)`.

    One scalar per layer (not per channel), initialized to 0.01 as in the paper and its
    reference snippet (where the parameter is misleadingly named `lr`). Nothing clamps it:
    it may turn negative in training. It is kept in float32 under mixed precision. The
    references put it under weight decay; to leave it out, pass
    `optimizer.exclude_from_weight_decay(var_names=["epsilon"])`.

    Derivatives: `dy/dx = 1[x > 0] + epsilon * (1 - x**2) * exp(-x**2 / 2)`,
    `dy/depsilon = x * exp(-x**2 / 2)`. Paper: arXiv 2405.12954.

    Args:
        epsilon_initializer: Initializer of `epsilon` (default `Constant(0.01)`).
        epsilon_trainable: If False, `epsilon` stays at its initial value.
        epsilon_regularizer: Optional regularizer of `epsilon`.
        epsilon_constraint: Optional constraint of `epsilon`.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Example:

    >>> model = keras.Sequential([keras.layers.Dense(64), keras_norms.activations.CRReLU()])
    """

    def __init__(
        self,
        epsilon_initializer: InitializerLike = None,
        epsilon_trainable: bool = True,
        epsilon_regularizer: RegularizerLike = None,
        epsilon_constraint: ConstraintLike = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.epsilon_initializer = initializers.get(epsilon_initializer or initializers.Constant(0.01))
        self.epsilon_trainable = check_bool("epsilon_trainable", epsilon_trainable)
        self.epsilon_regularizer = regularizers.get(epsilon_regularizer)
        self.epsilon_constraint = constraints.get(epsilon_constraint)
        self.supports_masking = True
        # A scalar weight needs no input shape: build now, as Keras does for such layers.
        self.epsilon = self.add_weight(
            name="epsilon",
            shape=(),
            initializer=self.epsilon_initializer,
            regularizer=self.epsilon_regularizer,
            constraint=self.epsilon_constraint,
            trainable=self.epsilon_trainable,
            autocast=False,
        )
        self.built = True

    def call(self, inputs: Tensor) -> Tensor:
        x = to_floating(inputs, self.compute_dtype)
        return activation_ops.crrelu(x, ops.cast(self.epsilon, x.dtype))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "epsilon_initializer": initializers.serialize(self.epsilon_initializer),
                "epsilon_trainable": self.epsilon_trainable,
                "epsilon_regularizer": regularizers.serialize(self.epsilon_regularizer),
                "epsilon_constraint": constraints.serialize(self.epsilon_constraint),
            }
        )
        return config
