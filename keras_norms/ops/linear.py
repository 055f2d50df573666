"""Normalized linear maps: OLinear's NormLin and OrthoTrans, and hyperspherical (cosine) heads."""

from keras import ops

from keras_norms.ops.dtypes import matmul, maximum
from keras_norms.ops.types import Tensor

_NORMLIN_MIN_ROW_SUM = 1e-12  # the clamp of torch's F.normalize(p=1) in the reference


def normalized_linear_kernel(kernel: Tensor) -> Tensor:
    """`softplus(K) / max(sum_in softplus(K), 1e-12)`: every output a convex mix of the inputs.

    `kernel` is in Keras layout `(in, out)`, so the L1 normalization runs over axis 0 (the input
    axis); the reference's torch `(out, in)` weight normalizes its last axis. Softplus and L1,
    not a softmax (Yue et al., OLinear, arXiv 2505.08550).
    """
    positive = ops.softplus(kernel)
    return positive / maximum(ops.sum(positive, axis=0, keepdims=True), _NORMLIN_MIN_ROW_SUM)


def orthogonal_transform(x: Tensor, basis: Tensor, axis: int, inverse: bool) -> Tensor:
    """`x~_i = sum_j Q_ij x_j` along `axis` (`inverse=False`), or `x_j = sum_i Q_ij x~_i`."""
    moved = ops.moveaxis(x, axis, -1)
    transformed = matmul(moved, basis if inverse else ops.transpose(basis))
    return ops.moveaxis(transformed, -1, axis)


def l2_normalize(x: Tensor, axis: int, epsilon: float) -> Tensor:
    """`x / sqrt(max(sum(x**2), epsilon))` over `axis`: the Keras/TensorFlow `l2_normalize`.

    The clamp is on the squared norm (as `tf.math.l2_normalize`), so zero vectors stay zero.
    """
    return x * ops.rsqrt(maximum(ops.sum(ops.square(x), axis=axis, keepdims=True), epsilon))
