"""Normalized LR+GD as a loss: gradient descent on `log` of the mean loss.

Paper: Tyurin, "From Logistic Regression to the Perceptron Algorithm: Exploring Gradient Descent
with Large Step Sizes", arXiv 2412.08424. The normalized step `w -= gamma * grad f(w) / f(w)` is
plain gradient descent with step `gamma` on `log f(w)`, since `grad log f = grad f / f`.
"""

from typing import Any

import keras
from keras import ops

from keras_norms.ops import losses as loss_ops
from keras_norms.ops.dtypes import upcast
from keras_norms.ops.statistics import masked_mean
from keras_norms.ops.types import Tensor


@keras.saving.register_keras_serializable(package="keras_norms")
class LogMeanLoss(keras.losses.Loss):
    """`log(mean_i loss_i)` over the batch: Normalized LR+GD with `SGD(learning_rate=gamma)`.

    With the default `base="logistic"` (binary labels 0/1 and logits, the paper's logistic
    regression), the value is computed as `logsumexp_i(log_softplus(-m_i)) - log(n)` with margins
    `m_i = (2 y_i - 1) * logit_i`, so it stays finite and exact when the mean loss itself
    underflows (large margins, the large-step regime the paper studies). Any other Keras loss can
    be wrapped (`base=keras.losses.Hinge()`); then its per-sample values are averaged and the log
    taken directly, which underflows to `-inf` when they all do.

    The method is full-batch: fit with `batch_size` equal to the dataset size. `log(mean)` is
    not `mean(log)`: mini-batches change the method, and per-sample weights have no meaning here,
    so a `sample_weight` raises.

    Args:
        base: `"logistic"`, or a `keras.losses.Loss` whose `call` gives per-sample values.
        name, dtype: As for any `keras.losses.Loss`.

    Example:

    >>> model.compile(keras.optimizers.SGD(learning_rate=100.0), keras_norms.losses.LogMeanLoss())
    >>> model.fit(x, y, batch_size=len(x), epochs=50)
    """

    def __init__(
        self,
        base: str | keras.losses.Loss | dict[str, Any] = "logistic",
        name: str = "log_mean_loss",
        dtype: str | keras.DTypePolicy | None = None,
    ) -> None:
        super().__init__(name=name, reduction="sum_over_batch_size", dtype=dtype)
        self.base: str | keras.losses.Loss  # "logistic" or a Loss
        if base == "logistic":
            self.base = base
        elif isinstance(base, keras.losses.Loss):
            self.base = base
        elif isinstance(base, dict):
            self.base = keras.losses.deserialize(base)
        else:
            raise TypeError(f'`base` must be "logistic" or a keras.losses.Loss. Received: base={base!r}')

    def __call__(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        if sample_weight is not None:
            raise ValueError(
                "LogMeanLoss is the log of the full-batch mean; it takes no sample_weight. "
                f"Received: sample_weight of shape {ops.shape(sample_weight)}"
            )
        return super().__call__(y_true, y_pred)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        if isinstance(self.base, str):  # "logistic"
            return loss_ops.log_mean_logistic_loss(y_true, y_pred)
        values = upcast(self.base.call(y_true, y_pred))
        return ops.log(ops.reshape(masked_mean(values, tuple(range(len(values.shape)))), ()))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("reduction", None)
        base = self.base if self.base == "logistic" else keras.losses.serialize(self.base)
        config.update({"base": base})
        return config
