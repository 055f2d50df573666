"""TempNet: a per-input temperature from logits (Qiu et al., ICML 2024, arXiv 2404.04575)."""

from keras import ops

from keras_norms.ops.dtypes import matmul
from keras_norms.ops.types import Tensor


def tempnet_temperature(
    hidden: Tensor, log_scale: Tensor, last_kernel: Tensor, last_bias: Tensor, tau_min: float, tau_max: float
) -> Tensor:
    """`tau_min + (tau_max - tau_min) * sigmoid(Lin3((softmax(h / exp(s)) - 1/M) * h))`.

    `hidden` is `h` of shape `(..., M)`; the centering uses `1/M` (the hidden width).
    """
    units = hidden.shape[-1]
    weights = ops.softmax(hidden / ops.exp(log_scale), axis=-1)
    logit = matmul((weights - 1.0 / units) * hidden, last_kernel) + last_bias
    return tau_min + (tau_max - tau_min) * ops.sigmoid(logit)
