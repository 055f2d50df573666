"""Fused fast paths written in Keras ops, with hand-written gradients (`keras.ops.custom_gradient`).

They run on every backend. Each computes its statistics in fewer passes than the reference and
keeps only the input and per-channel / per-sample statistics for the backward pass, which
recomputes the rest.
"""

from keras import ops

from keras_norms.backend import register, torch_compiling
from keras_norms.backend.recompute import with_residuals
from keras_norms.ops.dtypes import maximum
from keras_norms.ops.statistics import masked_mean, masked_mean_square, masked_moments, split_groups


def _count(x, axes):
    count = 1
    for axis in axes:
        count = count * ops.shape(x)[axis]
    return ops.cast(count, x.dtype)


@register("evonorm_b0")
def evonorm_b0(x, v, moving_variance, spatial_axes, epsilon):
    """EvoNorm-B0 `x / max(sqrt(s2_b + eps), v x + sqrt(s2_i + eps))`, unmasked, one device.

    Training (`moving_variance` None): the per-sample moments over `spatial_axes` come from one
    two-pass reduction, and the batch variance from them (law of total variance: equal counts):
    `s2_b = mean_n(s2_i) + var_n(mu_i)`. Inference: `s2_b = moving_variance`, a constant.
    `x`, `v` and the statistics are float32 (or float64); `v` and `moving_variance` broadcast.

    Returns `(y, s2_b, count)`: `s2_b` (dims kept) and the count it reduces over, both without
    gradient, for the moving-variance update.

    Gradient, with `d = max(a, r)`, `a = sqrt(s2_b + eps)`, `r = v x + s`, `s = sqrt(s2_i + eps)`,
    `h = -g x / d^2` split into `h_a` (where `a >= r`) and `h_r`:
    `dx = g / d + v h_r + sum_spatial(h_r) (x - mu_i) / (s N_i) [+ sum_batch(h_a) (x - mu_b) / (a N_b)]`,
    `dv = sum(h_r x)`; the bracket only in training.
    """
    training = moving_variance is None
    batch_axes = (0,) + tuple(spatial_axes)
    instance_count = _count(x, spatial_axes)
    sg = ops.stop_gradient
    mean_i, var_i, _ = (sg(t) for t in masked_moments(x, tuple(spatial_axes)))
    if training:
        mean_b = masked_mean(mean_i, (0,))
        var_b = masked_mean(var_i, (0,)) + masked_mean_square(mean_i - mean_b, (0,))
        batch_count = _count(x, batch_axes)
    else:
        mean_b, var_b, batch_count = None, sg(moving_variance), None

    if mean_b is None:
        mean_b = ops.zeros_like(var_b)

    # The statistics go in as arguments (zero cotangent: their dependence on x is in dx).
    @ops.custom_gradient
    def normalize(x, v, mean_i, var_i, mean_b, var_b):
        a = ops.sqrt(var_b + epsilon)
        s = ops.sqrt(var_i + epsilon)

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            r = v * x + s
            d = maximum(a, r)
            h = -upstream * x / ops.square(d)
            h_r = ops.where(a >= r, 0.0, h)
            dx = upstream / d + v * h_r
            dx = dx + ops.sum(h_r, axis=spatial_axes, keepdims=True) / (s * instance_count) * (x - mean_i)
            if training:
                h_a = h - h_r
                dx = dx + ops.sum(h_a, axis=batch_axes, keepdims=True) / (a * batch_count) * (x - mean_b)
            dv = ops.reshape(ops.sum(h_r * x, axis=batch_axes, keepdims=True), ops.shape(v))
            zeros = [ops.zeros_like(t) for t in (mean_i, var_i, mean_b, var_b)]
            return (dx, dv, *zeros)

        return x / maximum(a, v * x + s), grad

    return normalize(x, v, mean_i, var_i, mean_b, var_b), var_b, batch_count


@register("evonorm_s", unless={"torch": torch_compiling})
def evonorm_s(x, v, channel_axis, groups, epsilon, centered=True):
    """EvoNorm-S `x * sigmoid(v x) / sqrt(s2_g + eps)` (S0; S1 with `v=None`; S2 with `centered=False`).

    `s2_g` is the per-sample variance (`centered`) or mean square over the positions and the
    `C // groups` channels of each group. Unmasked, with the activation. `v` broadcasts against `x`.
    Only `x`, `v` and per-sample, per-channel copies of the group mean and `r = rsqrt(s2_g + eps)`
    are kept for the backward, which recomputes the gate `s = sigmoid(v x)`. With
    `S = sum_group(g s x)` and `M` the group's count:
    `dx = r g s + v r g s (1 - s) x - r^3 S (x - mu_g) / M`, `dv = sum(r g s (1 - s) x^2)`.

    Group sums are taken as per-channel sums over the positions, then summed within each group on
    that small tensor: every large tensor keeps the input's layout (a 5-D grouped view of it with
    2 to 8 channels per group vectorizes poorly on CPU).
    """
    rank = len(x.shape)
    channels = x.shape[channel_axis]
    spatial_axes = tuple(a for a in range(1, rank) if a != channel_axis)
    group_count = _count(x, spatial_axes) * (channels // groups)  # positions may be unknown until run

    def group_sum(t):
        """Sums over positions and the channels of each group, repeated for every channel."""
        per_channel = ops.sum(t, axis=spatial_axes, keepdims=True)
        grouped = split_groups(per_channel, channel_axis, groups)
        total = ops.broadcast_to(ops.sum(grouped, axis=channel_axis + 1, keepdims=True), ops.shape(grouped))
        return ops.reshape(total, ops.shape(per_channel))

    def forward(x, v=None):
        if centered:
            mean = group_sum(x) / group_count
            variance = group_sum(ops.square(x - mean)) / group_count
        else:
            mean = ops.zeros((1,) * rank, x.dtype)
            variance = group_sum(ops.square(x)) / group_count
        rstd = ops.rsqrt(variance + epsilon)
        y = x * ops.sigmoid(x if v is None else v * x) * rstd
        return y, (x, mean, rstd) if v is None else (x, v, mean, rstd)

    def backward(residuals, upstream):
        if v is None:
            x, mean, rstd = residuals
            v_ = 1.0
        else:
            x, v_, mean, rstd = residuals
        gate = ops.sigmoid(v_ * x)
        gs = upstream * gate
        a = rstd * gs * (1.0 - gate) * x  # the gate's slope term, shared by dx and dv
        total = group_sum(gs * x)
        dx = rstd * gs + v_ * a - ops.power(rstd, 3) * total / group_count * (x - mean)
        if v is None:
            return (dx,)
        dv = ops.sum(a * x, axis=(0,) + spatial_axes, keepdims=True)
        return dx, ops.reshape(dv, ops.shape(v_))

    function = with_residuals(forward, backward)
    return function(x) if v is None else function(x, v)
