"""EvoNorm formulas (Liu, Brock, Simonyan, Le, "Evolving Normalization-Activation Layers", 2004.02967).

Each function takes the float32 (or float64) input and returns the normalized, activated tensor
before the affine `gamma`, `beta`; its statistics come from `keras_norms.ops.statistics`.
`epsilon` is always inside the square root, one value per layer, as in the authors' code.

B (batch) variants divide by `max(sqrt(batch_variance + eps), right)`, where `right` is
sample-dependent; S (sample) variants use group statistics of the current sample only.

`evonorm_b0`, `evonorm_b1`, `evonorm_b2` and `evonorm_s` take a fast path or a kernel
(`keras_norms.backend`) where one is on and covers the arguments (no mask, one replica), with the
same arguments and results.
"""

from collections.abc import Sequence

from keras import ops

from keras_norms.backend import with_fast_path
from keras_norms.ops.distributed import replica_count
from keras_norms.ops.dtypes import maximum
from keras_norms.ops.statistics import group_moments, masked_mean_square, masked_moments
from keras_norms.ops.types import Tensor


def _unmasked_on_one_replica(*args, weights=None, synchronized=False, **kwargs):
    return weights is None and not (synchronized and replica_count() > 1)


@with_fast_path("evonorm_b0", applicable=_unmasked_on_one_replica)
def evonorm_b0(
    x: Tensor,
    v: Tensor,
    *,
    spatial_axes: Sequence[int],
    epsilon: float,
    moving_variance: Tensor | None = None,
    weights: Tensor | None = None,
    synchronized: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """B0: `x / max(sqrt(s2_b + eps), v * x + sqrt(s2_i + eps))`.

    `s2_i` is the per-sample variance over `spatial_axes`; `s2_b` the variance over the batch and
    `spatial_axes` in training (`moving_variance` None), `moving_variance` at inference.
    `weights`: position weights (masks), or None; `synchronized`: the batch variance over every
    replica. `v` and `moving_variance` broadcast against `x`.

    Returns `(y, s2_b, count)`: the batch variance (dims kept; differentiable) and the count it
    reduces over, for the moving-variance update; at inference `(y, moving_variance, None)`.
    """
    _, instance_variance, _ = masked_moments(x, tuple(spatial_axes), weights)
    right = v * x + ops.sqrt(instance_variance + epsilon)
    return _divide_by_max(x, right, spatial_axes, epsilon, moving_variance, weights, synchronized)


@with_fast_path("evonorm_b1", applicable=_unmasked_on_one_replica)
def evonorm_b1(
    x: Tensor,
    *,
    spatial_axes: Sequence[int],
    epsilon: float,
    moving_variance: Tensor | None = None,
    weights: Tensor | None = None,
    synchronized: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """B1: `x / max(sqrt(s2_b + eps), (x + 1) * sqrt(m2_i + eps))`; `m2_i` the per-sample mean square.

    Arguments and results as `evonorm_b0`'s, without `v`.
    """
    instance_mean_square = masked_mean_square(x, tuple(spatial_axes), weights)
    right = (x + 1.0) * ops.sqrt(instance_mean_square + epsilon)
    return _divide_by_max(x, right, spatial_axes, epsilon, moving_variance, weights, synchronized)


@with_fast_path("evonorm_b2", applicable=_unmasked_on_one_replica)
def evonorm_b2(
    x: Tensor,
    *,
    spatial_axes: Sequence[int],
    epsilon: float,
    moving_variance: Tensor | None = None,
    weights: Tensor | None = None,
    synchronized: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """B2: `x / max(sqrt(s2_b + eps), sqrt(m2_i + eps) - x)`; `m2_i` the per-sample mean square.

    Arguments and results as `evonorm_b0`'s, without `v`.
    """
    instance_mean_square = masked_mean_square(x, tuple(spatial_axes), weights)
    right = ops.sqrt(instance_mean_square + epsilon) - x
    return _divide_by_max(x, right, spatial_axes, epsilon, moving_variance, weights, synchronized)


def _divide_by_max(x, right, spatial_axes, epsilon, moving_variance, weights, synchronized):
    if moving_variance is None:
        batch_axes = (0, *spatial_axes)
        _, batch_variance, count = masked_moments(x, batch_axes, weights, synchronized)
    else:
        batch_variance, count = moving_variance, None
    # The denominator is >= sqrt(eps) > 0 even where `right` is negative (B1, B2).
    return x / maximum(ops.sqrt(batch_variance + epsilon), right), batch_variance, count


def _unmasked_with_act(*args, apply_act=True, weights=None, **kwargs):
    return weights is None and apply_act


@with_fast_path("evonorm_s", applicable=_unmasked_with_act)
def evonorm_s(
    x: Tensor,
    v: Tensor | None = None,
    *,
    channel_axis: int,
    groups: int,
    epsilon: float,
    centered: bool = True,
    apply_act: bool = True,
    weights: Tensor | None = None,
) -> Tensor:
    """S0/S1/S2: `x * sigmoid(v * x) / sqrt(s2_g + eps)`.

    `s2_g` is the per-sample variance (`centered`: S0, S1) or mean square (S2) over the positions
    and the `C // groups` contiguous channels of each group. S1 and S2 pass `v=None`, i.e. the
    SiLU `x * sigmoid(x)`. `apply_act=False` drops the sigmoid gate and keeps the division
    (timm's S0a/S1a/S2a without activation). `weights`: position weights (masks), or None.
    """
    _, group_statistic, _ = group_moments(x, channel_axis, groups, weights, centered=centered)
    numerator = x
    if apply_act:
        numerator = x * ops.sigmoid(x if v is None else v * x)
    return numerator * ops.rsqrt(group_statistic + epsilon)
