"""LayerNorm (Ba, Kiros, Hinton, "Layer Normalization", arXiv 1607.06450), for layers that need it inside."""

from keras import ops

from keras_norms.ops.statistics import masked_moments
from keras_norms.ops.types import Tensor


def layer_normalization(
    x: Tensor, epsilon: float, gamma: Tensor | None = None, beta: Tensor | None = None, axis: int = -1
) -> Tensor:
    """`(x - mean) / sqrt(var + epsilon) [* gamma] [+ beta]`, the moments over `axis` (biased variance)."""
    mean, variance, _ = masked_moments(x, (axis % len(x.shape),))
    y = (x - mean) * ops.rsqrt(variance + epsilon)
    if gamma is not None:
        y = y * gamma
    return y if beta is None else y + beta
