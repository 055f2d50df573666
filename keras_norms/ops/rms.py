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

from keras_norms.ops.dtypes import upcast
from keras_norms.ops.statistics import masked_mean_square
from keras_norms.ops.types import Tensor


def rms_normalization(x: Tensor, axis: int | Sequence[int], epsilon: float) -> Tensor:
    """`x * rsqrt(mean(x**2, axis) + epsilon)`, statistics in at least float32."""
    x = upcast(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return x * ops.rsqrt(masked_mean_square(x, axes) + epsilon)


def crms_normalization(z: Tensor, axis: int, epsilon: float) -> Tensor:
    """`z * rsqrt((sum(z**2) + sum(z)**2) / (d_z + 1) + epsilon)` over the single `axis`."""
    z = upcast(z)
    full_dim = z.shape[axis] + 1
    sum_of_squares = ops.sum(ops.square(z), axis=axis, keepdims=True)
    square_of_sum = ops.square(ops.sum(z, axis=axis, keepdims=True))
    return z * ops.rsqrt((sum_of_squares + square_of_sum) / full_dim + epsilon)
