"""Moments for every normalization in keras-norms: one mechanism, masked and in float32.

Every layer chooses *which* axes it reduces over (batch, instance, group, feature) and calls the
functions here, on inputs already upcast to float32 or float64 (`keras_norms.ops.dtypes`).
Masks, the guard against empty reductions and the cross-replica sums live in one place, so a
fix to any of them reaches every layer.

Masks follow Keras: a boolean tensor with the input's shape minus the channel axis, True where a
position is valid. Masked positions are excluded from every statistic that reduces over
positions; statistics over features alone (per token) never see the mask.
"""

from collections.abc import Sequence

from keras import ops

from keras_norms.ops.distributed import cross_replica_sum
from keras_norms.ops.dtypes import (
    maximum,
    upcast,  # noqa: F401  (its earlier home; kept importable)
)
from keras_norms.ops.types import Tensor


def mask_weights(mask: Tensor, channel_axis: int, dtype: str) -> Tensor:
    """Turns a position mask (the input's shape minus `channel_axis`) into 0/1 weights.

    The returned tensor has the input's rank, with size 1 on the channel axis, so it broadcasts
    against the input.
    """
    return ops.expand_dims(ops.cast(mask, dtype), channel_axis)


def masked_sum_and_count(
    x: Tensor, axes: Sequence[int], weights: Tensor | None = None, synchronized: bool = False
) -> tuple[Tensor, Tensor]:
    """`sum(x * weights)` and `sum(weights)` (broadcast to `x`) over `axes`, keeping dims.

    Sums and counts, not means: they add up across masked, uneven or distributed shards. With
    `synchronized`, both are summed over the replicas of a data-parallel step
    (`keras_norms.ops.distributed.cross_replica_sum`).
    """
    if weights is None:
        count = 1
        for axis in axes:
            count = count * ops.shape(x)[axis]
        total, count = ops.sum(x, axis=axes, keepdims=True), ops.cast(count, x.dtype)
    else:
        weights = ops.broadcast_to(weights, ops.shape(x))
        total = ops.sum(x * weights, axis=axes, keepdims=True)
        count = ops.sum(weights, axis=axes, keepdims=True)
    if synchronized:
        total, count = cross_replica_sum(total), cross_replica_sum(count)
    return total, count


def _safe_divide(total, count):
    # A reduction with no valid position (a fully masked sample) gives 0, not NaN.
    return total / maximum(count, 1.0)


def masked_moments(
    x: Tensor, axes: Sequence[int], weights: Tensor | None = None, synchronized: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """Returns `(mean, variance, count)` of `x` over `axes` (dims kept), excluding weight-0 positions.

    The variance is biased (divides by the count) and computed in two passes, so it is never
    negative. `count` is the number of valid elements reduced over, for Bessel corrections.
    With `synchronized`, all three are over the global batch of a data-parallel step (two
    all-reduces: the sums and counts, then the squared deviations from the global mean).
    """
    total, count = masked_sum_and_count(x, axes, weights, synchronized)
    mean = _safe_divide(total, count)
    squared_deviation, _ = masked_sum_and_count(ops.square(x - mean), axes, weights, synchronized)
    return mean, _safe_divide(squared_deviation, count), count


def masked_mean(x: Tensor, axes: Sequence[int], weights: Tensor | None = None, synchronized: bool = False) -> Tensor:
    """Returns `mean(x)` over `axes` (dims kept), excluding weight-0 positions (0 if none is valid).

    Also the mean to use without a mask: `keras.ops.mean` (and `ops.var`) compute float64 input
    in float32 on JAX and PyTorch (Keras' 64-to-32 promotion); a sum and a count do not.
    """
    return _safe_divide(*masked_sum_and_count(x, axes, weights, synchronized))


def masked_mean_square(
    x: Tensor, axes: Sequence[int], weights: Tensor | None = None, synchronized: bool = False
) -> Tensor:
    """Returns `mean(x**2)` over `axes` (dims kept), excluding weight-0 positions."""
    return masked_mean(ops.square(x), axes, weights, synchronized)


def split_groups(x: Tensor, channel_axis: int, groups: int) -> Tensor:
    """Reshapes the channel axis `C` of `x` into `(groups, C // groups)`, contiguous blocks.

    Channel `c` lands in group `c // (C // groups)` in either layout. Returns the reshaped tensor;
    the group axis sits at `channel_axis` and the within-group channels right after it.
    """
    shape = ops.shape(x)
    channels = x.shape[channel_axis]
    grouped_shape = list(shape[:channel_axis]) + [groups, channels // groups]
    grouped_shape += list(shape[channel_axis + 1 :])
    return ops.reshape(x, grouped_shape)
