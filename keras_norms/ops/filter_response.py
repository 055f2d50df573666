"""Filter Response Normalization and the Thresholded Linear Unit (Singh, Krishnan, "Filter Response
Normalization Layer: Eliminating Batch Dependence in the Training of Deep Neural Networks",
CVPR 2020, arXiv 1911.09737)."""

from collections.abc import Sequence

from keras import ops

from keras_norms.backend import with_fast_path
from keras_norms.ops.dtypes import maximum
from keras_norms.ops.statistics import masked_mean_square
from keras_norms.ops.types import Tensor


def _unmasked(*args, weights=None, **kwargs):
    return weights is None


@with_fast_path("frn", applicable=_unmasked)
def frn(x: Tensor, epsilon: float | Tensor, *, spatial_axes: Sequence[int], weights: Tensor | None = None) -> Tensor:
    """FRN without the affine: `x / sqrt(nu2 + epsilon)`, `nu2` the mean square over `spatial_axes`.

    `epsilon` is a float or a scalar tensor (FRN's learned epsilon, which gets a gradient).
    `weights`: position weights (masks), or None. A kernel takes it where one applies.
    """
    return filter_response_normalization(x, masked_mean_square(x, tuple(spatial_axes), weights), epsilon)


def filter_response_normalization(x: Tensor, mean_square: Tensor, epsilon: float | Tensor) -> Tensor:
    """`x / sqrt(nu2 + epsilon)`, `nu2` the per-sample, per-channel mean square over positions.

    No mean is subtracted: FRN relies on the learned threshold of the TLU that follows instead.
    `epsilon` may be a tensor (the learned one).
    """
    return x * ops.rsqrt(mean_square + epsilon)


def tlu(x: Tensor, tau: Tensor, alpha: Tensor | None = None) -> Tensor:
    """Thresholded linear unit: `max(x, tau)`, or `max(x, alpha * x + tau)` (TLU-affine)."""
    return maximum(x, tau if alpha is None else alpha * x + tau)
