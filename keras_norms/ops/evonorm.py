"""EvoNorm formulas (Liu, Brock, Simonyan, Le, "Evolving Normalization-Activation Layers", 2004.02967).

Each function takes float32 (or float64) tensors and the statistics already computed by
`keras_norms.ops.statistics`, and returns the normalized, activated tensor before the affine
`gamma`, `beta`. `epsilon` is always inside the square root, one value per layer, as in the
authors' code.

B (batch) variants divide by `max(sqrt(batch_variance + eps), right)`, where `right` is
sample-dependent; S (sample) variants use group statistics of the current sample only.
"""

from keras import ops

from keras_norms.ops.dtypes import maximum
from keras_norms.ops.types import Tensor


def evonorm_b0(x: Tensor, batch_variance: Tensor, instance_variance: Tensor, v: Tensor, epsilon: float) -> Tensor:
    """B0: `x / max(sqrt(s2_b + eps), v * x + sqrt(s2_i + eps))`."""
    right = v * x + ops.sqrt(instance_variance + epsilon)
    return _divide_by_max(x, batch_variance, right, epsilon)


def evonorm_b1(x: Tensor, batch_variance: Tensor, instance_mean_square: Tensor, epsilon: float) -> Tensor:
    """B1: `x / max(sqrt(s2_b + eps), (x + 1) * sqrt(m2_i + eps))`."""
    right = (x + 1.0) * ops.sqrt(instance_mean_square + epsilon)
    return _divide_by_max(x, batch_variance, right, epsilon)


def evonorm_b2(x: Tensor, batch_variance: Tensor, instance_mean_square: Tensor, epsilon: float) -> Tensor:
    """B2: `x / max(sqrt(s2_b + eps), sqrt(m2_i + eps) - x)`."""
    right = ops.sqrt(instance_mean_square + epsilon) - x
    return _divide_by_max(x, batch_variance, right, epsilon)


def _divide_by_max(x, batch_variance, right, epsilon):
    # The denominator is >= sqrt(eps) > 0 even where `right` is negative (B1, B2).
    return x / maximum(ops.sqrt(batch_variance + epsilon), right)


def evonorm_s(
    x: Tensor, group_statistic: Tensor, epsilon: float, v: Tensor | None = None, apply_act: bool = True
) -> Tensor:
    """S0/S1/S2: `x * sigmoid(v * x) / sqrt(group_statistic + eps)`.

    `group_statistic` is the group variance (S0, S1) or the group mean square (S2); S1 and S2
    pass `v=None`, i.e. the SiLU `x * sigmoid(x)`. `apply_act=False` drops the sigmoid gate and
    keeps the division (timm's S0a/S1a/S2a without activation).
    """
    numerator = x
    if apply_act:
        numerator = x * ops.sigmoid(x if v is None else v * x)
    return numerator * ops.rsqrt(group_statistic + epsilon)
