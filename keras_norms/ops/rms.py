"""RMSNorm and CRMSNorm formulas, without the affine.

RMSNorm (Zhang & Sennrich, "Root Mean Square Layer Normalization", 1910.07467):
`x / sqrt(mean(x**2) + eps)` over the feature axes.

CRMSNorm (Jiang, Gu, Zhu, Pan, "Pre-RMSNorm and Pre-CRMSNorm Transformers", 2305.14858): the input
`z` holds the first d-1 coordinates of a zero-mean vector `x` in R^d, whose dropped last coordinate
is `-sum(z)`. Then `mean(x**2) = (sum(z**2) + sum(z)**2) / d`, and
`crms_normalization(z) == rms_normalization(concat([z, -sum(z)]))[..., :d-1]` exactly.
"""

from collections.abc import Sequence

from keras import ops

from keras_norms.backend import with_fast_path
from keras_norms.ops.dtypes import upcast
from keras_norms.ops.statistics import masked_mean_square, masked_sum_and_count
from keras_norms.ops.types import Tensor


def _axes(x, axis):
    rank = len(x.shape)
    return tuple(sorted(a % rank for a in ((axis,) if isinstance(axis, int) else axis)))


def _over_trailing_axes(x, axis, *args, **kwargs):
    axes = _axes(x, axis)
    return axes == tuple(range(len(x.shape) - len(axes), len(x.shape)))


@with_fast_path("rms_normalization", applicable=_over_trailing_axes)
def rms_normalization(x: Tensor, axis: int | Sequence[int], epsilon: float, gamma: Tensor | None = None) -> Tensor:
    """`x * rsqrt(mean(x**2, axis) + epsilon) [* gamma]`, statistics in at least float32.

    `gamma`, the gain, broadcasts against `x` (shape 1 off the normalized axes), or None. Over
    trailing axes on torch, one `torch.nn.functional.rms_norm` call (`keras_norms.backend`).
    """
    x = upcast(x)
    y = x * ops.rsqrt(masked_mean_square(x, _axes(x, axis)) + epsilon)
    return y if gamma is None else y * gamma


def _over_the_last_axis(z, axis, *args, **kwargs):
    return axis % len(z.shape) == len(z.shape) - 1


@with_fast_path("crms_normalization", applicable=_over_the_last_axis)
def crms_normalization(z: Tensor, axis: int, epsilon: float, gamma: Tensor | None = None) -> Tensor:
    """`z * rsqrt((sum(z**2) + sum(z)**2) / (d_z + 1) + epsilon) [* gamma]` over the single `axis`."""
    z = upcast(z)
    total, count = masked_sum_and_count(z, (axis,))
    total_square, _ = masked_sum_and_count(ops.square(z), (axis,))
    y = z * ops.rsqrt((total_square + ops.square(total)) / (count + 1.0) + epsilon)
    return y if gamma is None else y * gamma
