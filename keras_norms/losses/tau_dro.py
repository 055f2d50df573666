"""The KL-constrained DRO cross-entropy that trains a per-input temperature (TempNet).

Paper: Qiu, Guo, Xu, Zhao, Zhang, Yang, "To Cool or not to Cool? Temperature Network Meets Large
Foundation Models via DRO", ICML 2024, arXiv 2404.04575. Reference: zhqiu/TempNet `tau_cross_entropy`.
"""

import math
from typing import Any

import keras
from keras import ops

from keras_norms.arguments import check_int, check_number
from keras_norms.ops import losses as loss_ops
from keras_norms.ops.types import Tensor


@keras.saving.register_keras_serializable(package="keras_norms")
class TauDROCrossEntropy(keras.losses.Loss):
    """`tau * CE(logits / tau, label) + (rho - log V) * tau`, with a temperature per position.

    Equal to `-logit_label + tau * log(mean_j exp(logit_j / tau)) + rho * tau`: the dual of a
    KL-constrained distributionally robust loss over the vocabulary, minimized over `tau`.
    Gradients reach both the logits and `tau`; in the reference the language model is frozen and
    only the `TempNet` that predicts `tau` trains.

    `y_pred` is `concat([logits, tau], axis=-1)` (the temperature is the last entry, as a model
    ending in `Concatenate()([logits, TempNet(...)(logits)])` gives) or a dict with keys `"logits"`
    and `"tau"`. `y_true` are sparse integer labels.

    Args:
        rho: The DRO radius (0 for the GPT-2 runs of the paper).
        vocab_size: `V` in `log V`; default: the number of logits. The reference hard-codes
            32000 (LLaMA); use the real vocabulary size.
        reduction, name, dtype: As for any `keras.losses.Loss`.

    Example:

    >>> tau = keras_norms.layers.TempNet()(logits)
    >>> outputs = keras.layers.Concatenate()([logits, tau])
    >>> model.compile("adam", keras_norms.losses.TauDROCrossEntropy(rho=0.0))
    """

    def __init__(
        self,
        rho: float = 0.0,
        vocab_size: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str = "tau_dro_cross_entropy",
        dtype: str | keras.DTypePolicy | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.rho = check_number("rho", rho, minimum=0.0)
        self.vocab_size = None if vocab_size is None else check_int("vocab_size", vocab_size, 2)

    def call(self, y_true: Tensor, y_pred: Tensor | dict[str, Tensor]) -> Tensor:
        if isinstance(y_pred, dict):
            logits, tau = y_pred["logits"], y_pred["tau"]
        else:
            logits, tau = y_pred[..., :-1], y_pred[..., -1]
        vocab_size = self.vocab_size or ops.shape(logits)[-1]
        return loss_ops.tau_dro_cross_entropy(y_true, logits, tau, self.rho, math.log(vocab_size))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"rho": self.rho, "vocab_size": self.vocab_size})
        return config
