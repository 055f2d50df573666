"""Fused fast paths written in Keras ops, with hand-written gradients (`keras.ops.custom_gradient`).

They run on every backend. Each computes its statistics in fewer passes than the reference and
keeps only the input and per-channel / per-sample statistics for the backward pass, which
recomputes the rest.
"""

from keras import ops

from keras_norms.backend import register


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
    mean_i = sg(ops.mean(x, axis=spatial_axes, keepdims=True))
    var_i = sg(ops.mean(ops.square(x - mean_i), axis=spatial_axes, keepdims=True))
    if training:
        mean_b = ops.mean(mean_i, axis=0, keepdims=True)
        var_b = ops.mean(var_i, axis=0, keepdims=True) + ops.mean(ops.square(mean_i - mean_b), axis=0, keepdims=True)
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
            d = ops.maximum(a, r)
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

        return x / ops.maximum(a, v * x + s), grad

    return normalize(x, v, mean_i, var_i, mean_b, var_b), var_b, batch_count

