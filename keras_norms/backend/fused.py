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


@register("evonorm_b0", unless={"torch": torch_compiling})
def evonorm_b0(x, v, *, spatial_axes, epsilon, moving_variance=None, weights=None, synchronized=False):
    """`keras_norms.ops.evonorm_b0` without masks, on one replica (the op checks both)."""
    del weights, synchronized  # None and one replica: the op takes this path only then
    return _evonorm_batch("b0", x, v, tuple(spatial_axes), epsilon, moving_variance)


@register("evonorm_b1", unless={"torch": torch_compiling})
def evonorm_b1(x, *, spatial_axes, epsilon, moving_variance=None, weights=None, synchronized=False):
    """`keras_norms.ops.evonorm_b1` without masks, on one replica (the op checks both)."""
    del weights, synchronized
    return _evonorm_batch("b1", x, None, tuple(spatial_axes), epsilon, moving_variance)


@register("evonorm_b2", unless={"torch": torch_compiling})
def evonorm_b2(x, *, spatial_axes, epsilon, moving_variance=None, weights=None, synchronized=False):
    """`keras_norms.ops.evonorm_b2` without masks, on one replica (the op checks both)."""
    del weights, synchronized
    return _evonorm_batch("b2", x, None, tuple(spatial_axes), epsilon, moving_variance)


def _evonorm_batch(variant, x, v, spatial_axes, epsilon, moving_variance):
    """`y = x / d`, `d = max(a, r)`, `a = sqrt(s2_b + eps)`, `r` the variant's sample-dependent term:
    B0 `v x + q` with `q = sqrt(s2_i + eps)`; B1 `(x + 1) q` and B2 `q - x` with `q = sqrt(m2_i + eps)`.

    Training (`moving_variance` None): the per-sample moments over `spatial_axes` come from one
    two-pass reduction, and the batch variance from them (law of total variance: equal counts):
    `s2_b = mean_n(s2_i) + var_n(mu_i)`, `m2_i = s2_i + mu_i^2`. Inference: `s2_b` is the moving
    variance, a constant. Returns `(y, s2_b, count)` as the ops do; `s2_b` carries no gradient.

    The backward keeps `x`, `v` and per-sample / per-channel statistics only, and recomputes `d`.
    With `h = -g x / d^2` split into `h_a` (where `a >= r`) and `h_r`, `N_i`, `N_b` the counts
    over positions and over batch and positions:
    `dx = g / d + c h_r + (x - m) / (q N_i) sum_positions(h_r w) [+ (x - mu_b) / (a N_b) sum_batch(h_a)]`
    with `(c, m, w) = (v, mu_i, 1)` for B0, `(q, 0, x + 1)` for B1, `(-1, 0, 1)` for B2, the
    bracket in training only; and for B0 `dv = sum(h_r x)`.
    """
    training = moving_variance is None
    batch_axes = (0, *spatial_axes)
    instance_count = element_count(x, spatial_axes)
    sg = ops.stop_gradient
    mean_i, var_i, _ = (sg(t) for t in masked_moments(x, spatial_axes))
    if training:
        mean_b, var_b = batch_moments_of_instances(mean_i, var_i)
        batch_count = element_count(x, batch_axes)
    else:
        mean_b, var_b, batch_count = ops.zeros_like(moving_variance), sg(moving_variance), None
    a = ops.sqrt(var_b + epsilon)
    if variant == "b0":
        q = ops.sqrt(var_i + epsilon)
    else:
        q = ops.sqrt(var_i + ops.square(mean_i) + epsilon)

    def right(x, v, q):
        if variant == "b0":
            return v * x + q
        return (x + 1.0) * q if variant == "b1" else q - x

    def forward(x, *rest):
        v, statistics = (rest[0], rest[1:]) if variant == "b0" else (None, rest)
        mean_i, q, mean_b, a = statistics
        return x / maximum(a, right(x, v, q)), (x, *rest)

    def backward(residuals, upstream):
        x = residuals[0]
        v, statistics = (residuals[1], residuals[2:]) if variant == "b0" else (None, residuals[1:])
        mean_i, q, mean_b, a = statistics
        r = right(x, v, q)
        d = maximum(a, r)
        g_over_d = upstream / d
        # `-h` and its `r` branch; a 0/1 product, not a select: torch's `where` is 4x slower on CPU.
        minus_h = g_over_d * (x / d)
        minus_h_r = minus_h * ops.cast(r > a, x.dtype)
        slope = {"b0": v, "b1": q, "b2": -1.0}[variant]
        if variant == "b1":
            total_r = ops.sum(minus_h_r * (x + 1.0), axis=spatial_axes, keepdims=True)
        else:
            total_r = ops.sum(minus_h_r, axis=spatial_axes, keepdims=True)
        instance_coefficient = -total_r / (q * instance_count)
        # dx = g / d - slope (-h_r) + instance_coefficient (x - m) [+ batch_coefficient (x - mu_b)]
        scale, shift = instance_coefficient, instance_coefficient * (mean_i if variant == "b0" else 0.0)
        if training:
            total_a = ops.sum(minus_h - minus_h_r, axis=batch_axes, keepdims=True)
            batch_coefficient = -total_a / (a * batch_count)
            scale, shift = scale + batch_coefficient, shift + batch_coefficient * mean_b
        dx = g_over_d - slope * minus_h_r + (x * scale - shift)
        zeros = [ops.zeros_like(t) for t in statistics]
        if variant != "b0":
            return (dx, *zeros)
        dv = -ops.reshape(ops.sum(minus_h_r * x, axis=batch_axes, keepdims=True), ops.shape(v))
        return (dx, dv, *zeros)

    inputs = (x, v, mean_i, q, mean_b, a) if variant == "b0" else (x, mean_i, q, mean_b, a)
    y = with_residuals(forward, backward)(*inputs)
    return y, var_b if training else moving_variance, batch_count


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


@register("power_normalization", unless={"torch": torch_compiling})
def power_normalization(
    xs, quadratic_mean, normalizer, scaled_statistic, statistic_scale, *, epsilon, alpha_bkw, reduce_axes, synchronized
):
    """`keras_norms.ops.power_normalization` on one replica (the op checks), with its gradients by hand.

    The reference gets them from autodiff of a zero-valued auxiliary loss, which costs about ten
    full-size passes; here, with `g_z` and `g_a` the upstream gradients of `z` and of the auxiliary
    (`g_a` is the loss scale), `z = xs rn`, `rn = rsqrt(normalizer + eps)`,
    `rb = rsqrt(quadratic_mean + eps)`, `stat = scaled_statistic / statistic_scale` and
    `nu = (1 - alpha_bkw) stat`:
    `dxs = rb (g_z - g_a nu z)`,
    `d scaled_statistic = sum(g_z z) / M + g_a stat (1 - (1 - alpha_bkw) mean(z^2))` over
    `reduce_axes` (`M` positions), `d statistic_scale = g_a`; none to the two statistics.
    Keeps `xs` and per-channel tensors only.
    """
    del synchronized  # one replica: the op takes this path only then
    reduce_axes = tuple(reduce_axes)
    sg = ops.stop_gradient
    positions = element_count(xs, reduce_axes)
    # The statistics go in as arguments with a zero gradient, as the reference stops theirs.
    rn = ops.rsqrt(sg(normalizer) + epsilon)
    rb = ops.rsqrt(sg(quadratic_mean) + epsilon)

    def forward(xs, rn, rb, scaled_statistic, statistic_scale):
        residuals = (xs, rn, rb, scaled_statistic, statistic_scale)
        return (xs * rn, ops.zeros_like(statistic_scale)), residuals

    def backward(residuals, upstream):
        xs, rn, rb, scaled_statistic, statistic_scale = residuals
        g_z, g_a = upstream
        if g_a is None:  # TensorFlow, where the auxiliary does not reach the loss
            g_a = ops.zeros_like(statistic_scale)
        z = xs * rn
        statistic = scaled_statistic / statistic_scale
        decay = 1.0 - (1.0 - alpha_bkw) * ops.sum(ops.square(z), axis=reduce_axes, keepdims=True) / positions
        d_scaled = ops.sum(g_z * z, axis=reduce_axes, keepdims=True) / positions + g_a * statistic * decay
        dxs = rb * (g_z - (g_a * (1.0 - alpha_bkw)) * statistic * z)
        return (
            dxs,
            ops.zeros_like(rn),
            ops.zeros_like(rb),
            ops.reshape(d_scaled, ops.shape(scaled_statistic)),
            g_a,
        )

    return with_residuals(forward, backward)(xs, rn, rb, scaled_statistic, statistic_scale)
