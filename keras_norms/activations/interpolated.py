"""InterpolatedActivation: `alpha * fn_a(x) + (1 - alpha) * fn_b(x)`, alpha fixed or trainable in [0, 1].

Paper: Balcan, Nguyen, Sharma, "Sample complexity of data-driven tuning of model hyperparameters in
neural networks with structured parameter-dependent dual function", NeurIPS 2025, arXiv 2501.13734.
"""

import math
from collections.abc import Callable
from typing import Any, TypeAlias

import keras
from keras import activations, ops

from keras_norms.arguments import check_bool, check_fraction
from keras_norms.ops import activations as activation_ops
from keras_norms.ops.dtypes import to_floating
from keras_norms.ops.types import Shape, Tensor

# What `keras.activations.get` takes: a name, a serialized config or a callable.
ActivationLike: TypeAlias = str | dict[str, Any] | Callable[[Tensor], Tensor]


def _get_activation(name, value):
    if not (isinstance(value, (str, dict)) or callable(value)):
        raise TypeError(f"`{name}` must be a Keras activation name or a callable. Received: {name}={value!r}")
    try:
        return activations.get(value)
    except ValueError as error:
        raise ValueError(f"Unknown activation: {name}={value!r}. {error}") from None


@keras.saving.register_keras_serializable(package="keras_norms")
class InterpolatedActivation(keras.layers.Layer):
    """Mixes two activations: `alpha * fn_a(x) + (1 - alpha) * fn_b(x)`.

    In the paper `alpha` is a hyperparameter: fixed during a training run and chosen across runs
    (sweep it on a grid in [0, 1]; it round-trips through `get_config`). With
    `trainable_alpha=True` it is learned instead, stored as `alpha = sigmoid(alpha_logit)` so it
    stays in (0, 1): the differentiable relaxation of DARTS and Self-Tuning Networks, not what
    the paper analyses. `alpha = 1` gives `fn_a`, `alpha = 0` gives `fn_b`, and
    `d output / d alpha = fn_a(x) - fn_b(x)`.

    The paper's own instantiation (which pair of functions it mixes) could not be sourced; any two
    Keras activations can be mixed. Paper: arXiv 2501.13734.

    Args:
        fn_a: Activation name or callable weighted by `alpha` (default `"relu"`).
        fn_b: Activation name or callable weighted by `1 - alpha` (default `"linear"`).
        alpha: The weight of `fn_a`, in [0, 1]; in (0, 1) when trainable (its initial value).
        trainable_alpha: Learn `alpha` (as the float32 weight `alpha_logit`).
        **kwargs: Base layer keyword arguments.

    Example:

    >>> layer = keras_norms.activations.InterpolatedActivation("relu", "tanh", alpha=0.3)
    >>> y = layer(keras.ops.array([-1.0, 2.0]))  # 0.3 * relu(x) + 0.7 * tanh(x)
    """

    def __init__(
        self,
        fn_a: ActivationLike = "relu",
        fn_b: ActivationLike = "linear",
        alpha: float = 0.5,
        trainable_alpha: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.fn_a = _get_activation("fn_a", fn_a)
        self.fn_b = _get_activation("fn_b", fn_b)
        self.trainable_alpha = check_bool("trainable_alpha", trainable_alpha)
        self.alpha = check_fraction("alpha", alpha)
        if self.trainable_alpha and self.alpha in (0.0, 1.0):
            raise ValueError(
                "A trainable `alpha` is sigmoid(logit) and must start inside (0, 1). "
                f"Received: alpha={alpha!r} with trainable_alpha=True"
            )
        self.supports_masking = True
        self.alpha_logit: keras.Variable | None = None  # a weight when `trainable_alpha`
        if self.trainable_alpha:
            self.alpha_logit = self.add_weight(
                name="alpha_logit",
                shape=(),
                initializer=keras.initializers.Constant(math.log(self.alpha / (1.0 - self.alpha))),
                autocast=False,
            )
        self.built = True

    def call(self, inputs: Tensor) -> Tensor:
        x = to_floating(inputs, self.compute_dtype)
        if self.trainable_alpha:
            alpha = ops.cast(ops.sigmoid(self.alpha_logit), x.dtype)
        else:
            alpha = self.alpha
        return activation_ops.interpolate(self.fn_a(x), self.fn_b(x), alpha)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "fn_a": activations.serialize(self.fn_a),
                "fn_b": activations.serialize(self.fn_b),
                "alpha": self.alpha,
                "trainable_alpha": self.trainable_alpha,
            }
        )
        return config
