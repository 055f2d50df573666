"""Filter Response Normalization and the Thresholded Linear Unit (Singh, Krishnan, "Filter Response
Normalization Layer: Eliminating Batch Dependence in the Training of Deep Neural Networks",
CVPR 2020, arXiv 1911.09737)."""

from keras import ops

from keras_norms.ops.dtypes import maximum
from keras_norms.ops.types import Tensor


def filter_response_normalization(x: Tensor, mean_square: Tensor, epsilon: float | Tensor) -> Tensor:
    """`x / sqrt(nu2 + epsilon)`, `nu2` the per-sample, per-channel mean square over positions.

    No mean is subtracted: FRN relies on the learned threshold of the TLU that follows instead.
    `epsilon` may be a tensor (the learned one).
    """
    return x * ops.rsqrt(mean_square + epsilon)


def tlu(x: Tensor, tau: Tensor, alpha: Tensor | None = None) -> Tensor:
    """Thresholded linear unit: `max(x, tau)`, or `max(x, alpha * x + tau)` (TLU-affine)."""
    return maximum(x, tau if alpha is None else alpha * x + tau)
