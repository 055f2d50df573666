"""The projection of AdamP and SGDP (Heo et al., ICLR 2021, arXiv 2006.08217), branch-free.

For a weight `p` with gradient `g` and update `u`, the update loses its radial component when the
gradient is nearly orthogonal to the weight, i.e. when `p` is scale-invariant (followed by a
normalization). Two views are tried, the channel view first: per-channel rows (all axes but the
channel axes reduced), then the whole tensor as one row.
"""

from collections.abc import Sequence

from keras import ops

from keras_norms.ops.dtypes import maximum
from keras_norms.ops.types import Tensor


def _row_sum(x, axes):
    # Rows of length 1 when every axis is a channel axis; some backends read axis=() as "all".
    return ops.sum(x, axis=axes, keepdims=True) if axes else x


def _cosine(gradient, weight, axes, epsilon):
    # torch.cosine_similarity clamps each norm to epsilon separately.
    dot = _row_sum(gradient * weight, axes)
    gradient_norm = ops.sqrt(_row_sum(ops.square(gradient), axes))
    weight_norm = ops.sqrt(_row_sum(ops.square(weight), axes))
    return ops.abs(dot) / (maximum(gradient_norm, epsilon) * maximum(weight_norm, epsilon))


def _remove_radial(weight, update, axes, epsilon):
    # The normalizer is |p_row| + epsilon (additive), unlike the cosine's clamp.
    unit = weight / (ops.sqrt(_row_sum(ops.square(weight), axes)) + epsilon)
    return update - unit * _row_sum(unit * update, axes)


def project_update(
    weight: Tensor, gradient: Tensor, update: Tensor, channel_axes: Sequence[int], delta: float, epsilon: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Returns `(update, channel_fired, layer_fired)`: the projected update and which view fired.

    A view fires when `max_row |cos(g_row, p_row)| < delta / sqrt(row_length)`; the channel view
    wins when both would. Both projections are computed and one is selected with `ops.where`, so
    the function has no data-dependent Python branch and compiles under jit on every backend.

    Args:
        weight, gradient, update: Tensors of the same shape, rank >= 2.
        channel_axes: Axes of `weight` that index channels (kept apart in the channel view).
        delta: The cosine threshold (0.1 in the paper).
        epsilon: Clamp of the cosine's norms and additive guard of the projection's normalizer.
    """
    rank = len(weight.shape)
    size = 1
    for dim in weight.shape:
        size *= dim
    channels = 1
    for axis in channel_axes:
        channels *= weight.shape[axis]
    row_axes = tuple(axis for axis in range(rank) if axis not in channel_axes)
    all_axes = tuple(range(rank))
    channel_fired = ops.max(_cosine(gradient, weight, row_axes, epsilon)) < delta / (size // channels) ** 0.5
    layer_fired = ops.max(_cosine(gradient, weight, all_axes, epsilon)) < delta / size**0.5
    layer_fired = ops.logical_and(layer_fired, ops.logical_not(channel_fired))
    projected = ops.where(
        channel_fired,
        _remove_radial(weight, update, row_axes, epsilon),
        ops.where(layer_fired, _remove_radial(weight, update, all_axes, epsilon), update),
    )
    return projected, channel_fired, layer_fired
