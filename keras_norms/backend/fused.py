"""Fused fast paths written in Keras ops, with hand-written gradients (`keras.ops.custom_gradient`).

They run on every backend. Each computes its statistics in fewer passes than the reference and
keeps only the input and per-channel / per-sample statistics for the backward pass, which
recomputes the rest.
"""

from keras import ops

from keras_norms.backend import register, torch_compiling
from keras_norms.backend.recompute import with_residuals
from keras_norms.ops.dtypes import maximum
from keras_norms.ops.statistics import (
    batch_moments_of_instances,
    element_count,
    group_element_count,
    group_moments,
    group_sum,
    masked_moments,
)


@register("evonorm_b0")
def evonorm_b0(x, v, *, spatial_axes, epsilon, moving_variance=None, weights=None, synchronized=False):
    """`keras_norms.ops.evonorm_b0` without masks, on one replica (the op checks both).

    Training (`moving_variance` None): the per-sample moments over `spatial_axes` come from one
    two-pass reduction, and the batch variance from them (law of total variance: equal counts):
    `s2_b = mean_n(s2_i) + var_n(mu_i)`. Inference: `s2_b = moving_variance`, a constant.
    `x`, `v` and the statistics are float32 (or float64); `v` and `moving_variance` broadcast.

    Returns `(y, s2_b, count)` as the op does; here `s2_b` carries no gradient (its dependence on
    `x` is in the hand-written `dx`).

    Gradient, with `d = max(a, r)`, `a = sqrt(s2_b + eps)`, `r = v x + s`, `s = sqrt(s2_i + eps)`,
    `h = -g x / d^2` split into `h_a` (where `a >= r`) and `h_r`:
    `dx = g / d + v h_r + sum_spatial(h_r) (x - mu_i) / (s N_i) [+ sum_batch(h_a) (x - mu_b) / (a N_b)]`,
    `dv = sum(h_r x)`; the bracket only in training.
    """
    del weights, synchronized  # None and one replica: the op takes this path only then
    training = moving_variance is None
    batch_axes = (0,) + tuple(spatial_axes)
    instance_count = element_count(x, spatial_axes)
    sg = ops.stop_gradient
    mean_i, var_i, _ = (sg(t) for t in masked_moments(x, tuple(spatial_axes)))
    if training:
        mean_b, var_b = batch_moments_of_instances(mean_i, var_i)
        batch_count = element_count(x, batch_axes)
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

    return normalize(x, v, mean_i, var_i, mean_b, var_b), var_b if training else moving_variance, batch_count


@register("evonorm_s", unless={"torch": torch_compiling})
def evonorm_s(x, v=None, *, channel_axis, groups, epsilon, centered=True, apply_act=True, weights=None):
    """`keras_norms.ops.evonorm_s` without masks, with the activation (the op checks both).

    `s2_g` is the per-sample variance (`centered`) or mean square over the positions and the
    `C // groups` channels of each group. `v` broadcasts against `x`.
    Only `x`, `v` and per-sample, per-channel copies of the group mean and `r = rsqrt(s2_g + eps)`
    are kept for the backward, which recomputes the gate `s = sigmoid(v x)`. With
    `S = sum_group(g s x)` and `M` the group's count:
    `dx = r g s + v r g s (1 - s) x - r^3 S (x - mu_g) / M`, `dv = sum(r g s (1 - s) x^2)`.

    Group sums keep the input's layout (`keras_norms.ops.statistics.group_sum`).
    """
    del apply_act, weights  # True and None: the op takes this path only then
    spatial_axes = tuple(a for a in range(1, len(x.shape)) if a != channel_axis)

    def forward(x, v=None):
        mean, variance, _ = group_moments(x, channel_axis, groups, centered=centered)
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
        total = group_sum(gs * x, channel_axis, groups, spatial_axes)
        count = group_element_count(x, channel_axis, groups)
        dx = rstd * gs + v_ * a - ops.power(rstd, 3) * total / count * (x - mean)
        if v is None:
            return (dx,)
        dv = ops.sum(a * x, axis=(0,) + spatial_axes, keepdims=True)
        return dx, ops.reshape(dv, ops.shape(v_))

    function = with_residuals(forward, backward)
    return function(x) if v is None else function(x, v)
