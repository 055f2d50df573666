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

from keras_norms.ops.distributed import cross_replica_sum, replica_count
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


def element_count(x: Tensor, axes: Sequence[int], synchronized: bool = False) -> Tensor:
    """How many elements of `x` lie along `axes` (in `x`'s dtype; summed over replicas if `synchronized`).

    Read at run time, so that unknown sizes (a variable sequence length) count right.
    """
    count = 1
    for axis in axes:
        count = count * ops.shape(x)[axis]
    count = ops.cast(count, x.dtype)
    return cross_replica_sum(count) if synchronized else count


def _replica_sums(*tensors: Tensor) -> list[Tensor]:
    """Each tensor summed over the replicas, in one collective (tensors of one shape, stacked)."""
    if replica_count() == 1:
        return list(tensors)
    shape = ops.shape(tensors[0])
    stacked = cross_replica_sum(ops.stack([ops.broadcast_to(t, shape) for t in tensors]))
    return [stacked[i] for i in range(len(tensors))]


def masked_sum_and_count(
    x: Tensor, axes: Sequence[int], weights: Tensor | None = None, synchronized: bool = False
) -> tuple[Tensor, Tensor]:
    """`sum(x * weights)` and `sum(weights)` (broadcast to `x`) over `axes`, keeping dims.

    Sums and counts, not means: they add up across masked, uneven or distributed shards. With
    `synchronized`, both are summed over the replicas of a data-parallel step in one all-reduce
    (`keras_norms.ops.distributed.cross_replica_sum`).
    """
    total, count = _local_sum_and_count(x, axes, weights)
    if synchronized:
        total, count = _replica_sums(total, count)
    return total, count


def _local_sum_and_count(x, axes, weights):
    if weights is None:
        return ops.sum(x, axis=axes, keepdims=True), element_count(x, axes)
    weights = ops.broadcast_to(weights, ops.shape(x))
    return ops.sum(x * weights, axis=axes, keepdims=True), ops.sum(weights, axis=axes, keepdims=True)


def _safe_divide(total, count):
    # A reduction with no valid position (a fully masked sample) gives 0, not NaN.
    return total / maximum(count, 1.0)


def masked_moments(
    x: Tensor, axes: Sequence[int], weights: Tensor | None = None, synchronized: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """Returns `(mean, variance, count)` of `x` over `axes` (dims kept), excluding weight-0 positions.

    The variance is biased (divides by the count; `unbiased_variance` applies Bessel's
    correction). `count` is the number of valid elements reduced over.

    On one replica the variance takes two passes (the mean, then the squared deviations), so it
    is never negative and loses nothing to cancellation. With `synchronized` and more than one
    replica, all three are over the global batch of the data-parallel step and come from one
    all-reduce of the stacked sums of `x`, `x**2` and the counts; the variance is then
    `mean(x**2) - mean(x)**2`, clamped at 0, as flax's `use_fast_variance` computes it: exact up to
    float32 rounding of `mean(x)**2`, so accurate unless `|mean|` is orders of magnitude above the
    standard deviation.
    """
    if synchronized and replica_count() > 1:
        total, count = _local_sum_and_count(x, axes, weights)
        total_square, _ = _local_sum_and_count(ops.square(x), axes, weights)
        total, total_square, count = _replica_sums(total, total_square, count)
        mean = _safe_divide(total, count)
        return mean, ops.relu(_safe_divide(total_square, count) - ops.square(mean)), count
    total, count = _local_sum_and_count(x, axes, weights)
    mean = _safe_divide(total, count)
    squared_deviation, _ = _local_sum_and_count(ops.square(x - mean), axes, weights)
    return mean, _safe_divide(squared_deviation, count), count


def unbiased_variance(variance: Tensor, count: Tensor) -> Tensor:
    """Bessel's correction `variance * n / (n - 1)`; the biased variance itself when `n <= 1`."""
    return variance * count / maximum(count - 1.0, 1.0)


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


def batch_moments_of_instances(instance_mean: Tensor, instance_variance: Tensor) -> tuple[Tensor, Tensor]:
    """The batch mean and variance from per-sample ones over equal counts (axis 0, dims kept).

    The law of total variance, `var_b = mean_n(var_i) + var_n(mean_i)`: one pass over the large
    tensor gives both the instance and the batch statistics (unmasked, equal counts only).
    """
    batch_mean = masked_mean(instance_mean, (0,))
    batch_variance = masked_mean(instance_variance, (0,)) + masked_mean_square(instance_mean - batch_mean, (0,))
    return batch_mean, batch_variance


def group_sum(x: Tensor, channel_axis: int, groups: int, axes: Sequence[int]) -> Tensor:
    """Sums over `axes` and over the `C // groups` contiguous channels of each group, per channel.

    The result keeps dims (size 1 on `axes`) and repeats each group's sum for each of its
    channels, so it broadcasts against `x`. The large tensor keeps its layout: the sum over
    `axes` comes first, then the group sum on that small tensor (a grouped 5-D view of the input
    with 2 to 8 channels per group vectorizes poorly on CPU).
    """
    per_channel = ops.sum(x, axis=tuple(axes), keepdims=True)
    grouped = split_groups(per_channel, channel_axis, groups)
    total = ops.broadcast_to(ops.sum(grouped, axis=channel_axis + 1, keepdims=True), ops.shape(grouped))
    return ops.reshape(total, ops.shape(per_channel))


def group_element_count(x: Tensor, channel_axis: int, groups: int) -> Tensor:
    """How many elements each channel group of a sample holds: its positions times `C // groups`."""
    positions = tuple(a for a in range(1, len(x.shape)) if a != channel_axis)
    return element_count(x, positions) * (x.shape[channel_axis] // groups)


def group_moments(
    x: Tensor, channel_axis: int, groups: int, weights: Tensor | None = None, centered: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample `(mean, statistic, count)` over the positions and channels of each channel group.

    `statistic` is the variance (`centered`) or the mean square (GroupNorm's and EvoNorm-S's group
    statistic); `mean` is 0 when not `centered`. All three keep dims and hold each group's value
    for each of its channels (shape `(N, 1, ..., C)` channels-last), so they broadcast against
    `x`. `weights`: position weights (size 1 on `channel_axis`), or None.
    """
    rank = len(x.shape)
    positions = tuple(a for a in range(1, rank) if a != channel_axis)
    if weights is None:
        count = group_element_count(x, channel_axis, groups)
    else:  # every channel of a position has the same weight
        count = ops.sum(weights, axis=positions, keepdims=True) * (x.shape[channel_axis] // groups)

    def weighted_group_mean(t):
        t = t if weights is None else t * weights
        return _safe_divide(group_sum(t, channel_axis, groups, positions), count)

    mean = weighted_group_mean(x) if centered else ops.zeros((1,) * rank, x.dtype)
    return mean, weighted_group_mean(ops.square(x - mean)), count


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
