"""Z-loss: a shift- and scale-invariant classification loss on standardized logits.

Paper: de Brebisson & Vincent, "The Z-loss: a shift and scale invariant classification loss
belonging to the Spherical Family", arXiv 1604.08859. Not the PaLM/T5 "z-loss" (a `log(Z)**2` penalty).
"""

from typing import Any

import keras

from keras_norms.arguments import check_epsilon, check_number, check_positive
from keras_norms.ops import losses as loss_ops
from keras_norms.ops.types import Tensor


@keras.saving.register_keras_serializable(package="keras_norms")
class ZLoss(keras.losses.Loss):
    """Z-loss from logits and sparse integer labels: `softplus(a * (b - z_label)) / a`.

    `z = (o - mean(o)) / sqrt(var(o) + epsilon)`, the logits `o` standardized over the classes
    with the population variance. The loss is invariant to `o -> alpha * o + beta` (`alpha > 0`),
    depends only on `sum(o)`, `sum(o**2)` and `o_label` (the spherical family), and reaches every
    logit through the mean and the deviation. `a > 0` sets the sharpness and `b` the location;
    the paper tunes both on validation data (top-1 against top-k) and gives no universal default.

    `epsilon` goes under the square root, not after it: the loss and its gradient stay finite
    when all logits are equal (`sigma + eps` would still differentiate `sqrt(0)`).

    Args:
        a: Sharpness, > 0.
        b: Location of the softplus hinge in standardized units.
        epsilon: Added to the variance.
        reduction, name, dtype: As for any `keras.losses.Loss`.

    Example:

    >>> loss = keras_norms.losses.ZLoss(a=1.0, b=1.0)
    >>> loss(keras.ops.array([2]), keras.ops.array([[1.0, 2.0, 3.0, 4.0]]))  # 1.00726
    """

    def __init__(
        self,
        a: float = 1.0,
        b: float = 1.0,
        epsilon: float = 1e-7,
        reduction: str | None = "sum_over_batch_size",
        name: str = "z_loss",
        dtype: str | keras.DTypePolicy | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.a = check_positive("a", a)
        self.b = check_number("b", b)
        self.epsilon = check_epsilon("epsilon", epsilon)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return loss_ops.z_loss(y_true, y_pred, self.a, self.b, self.epsilon)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"a": self.a, "b": self.b, "epsilon": self.epsilon})
        return config
