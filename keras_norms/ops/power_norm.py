"""PowerNorm formulas (Shen, Yao, Gholami, Mahoney, Keutzer, "PowerNorm: Rethinking Batch
Normalization in Transformers", ICML 2020, arXiv 2003.07845), as the authors' code computes them
(`sIncerass/powernorm`, `fairseq/modules/norms/mask_powernorm.py`), not as the paper's algorithm
box states them.

Names: `quadratic_mean` is the per-channel mean of squares (the paper's psi^2), the moving one is
the code's `running_phi`, and `backward_statistic` is the code's `ema_gz`.
"""

from keras import ops

from keras_norms.ops.statistics import split_groups

# The authors' GroupScaling1D hard-wires its own epsilon; the layer's epsilon is not used there.
GROUP_SCALING_EPSILON = 1e-5


def group_scaling(x, channel_axis, groups):
    """Divides each token by the root mean square of its channel group: RMSNorm without gain.

    `x / sqrt(mean_{channels of the group}(x**2) + 1e-5)`, groups of `channels // groups`
    contiguous channels (the code's pre-step, in training and inference alike).
    """
    grouped = split_groups(x, channel_axis, groups)
    mean_square = ops.mean(ops.square(grouped), axis=channel_axis + 1, keepdims=True)
    scaled = grouped * ops.rsqrt(mean_square + GROUP_SCALING_EPSILON)
    return ops.reshape(scaled, ops.shape(x))


def updated_moving_quadratic_mean(moving, quadratic_mean, step, warmup_steps, alpha_fwd):
    """The code's `running_phi` update after training step `step` (counted from 1).

    During warmup (`step < warmup_steps`) a cumulative average runs first, and the exponential
    average runs on every step, so warmup steps apply both (reproduced as written).
    """
    step = ops.cast(step, moving.dtype)
    cumulative = moving * (step - 1.0) / step + quadratic_mean / step
    moving = ops.where(step < warmup_steps, cumulative, moving)
    return alpha_fwd * moving + (1.0 - alpha_fwd) * quadratic_mean


def power_normalization(xs, quadratic_mean, normalizer, backward_statistic, *, epsilon, alpha_bkw,
                        reduce_axes):
    """`z = xs / sqrt(normalizer + eps)`, with the code's approximate backward pass.

    `normalizer` is the batch `quadratic_mean` during warmup and the moving one after; both
    statistics get no gradient. Given the upstream gradient `g` of `z`:

    - `dL/dxs = (g - (1 - alpha_bkw) * backward_statistic * z) / sqrt(quadratic_mean + eps)`,
      dividing by the *batch* statistic even after warmup, as the code does;
    - the gradient returned for `backward_statistic` is its *new value*,
      `backward_statistic + mean_{all positions}((g - nu * z) * z)`, for a variable created with
      `overwrite_with_gradient=True`: the optimizer writes it to the variable.

    All arguments are tensors (not Keras variables: torch would ignore the custom gradient).
    """

    @ops.custom_gradient
    def normalize(xs, quadratic_mean, normalizer, backward_statistic):
        def grad(*args, upstream=None):
            if upstream is None:  # jax, tensorflow: grad(upstream), forward values from the closure
                upstream, inputs = args[0], (xs, quadratic_mean, normalizer, backward_statistic)
            else:  # torch: grad(*forward inputs, upstream=...). Under torch.compile a closure
                inputs = args  # would hold the first trace's tensors, so read the inputs given.
            return _approximate_backward(upstream, *inputs, epsilon, alpha_bkw, reduce_axes)

        return xs * ops.rsqrt(normalizer + epsilon), grad

    return normalize(xs, quadratic_mean, normalizer, backward_statistic)


def _approximate_backward(upstream, xs, quadratic_mean, normalizer, backward_statistic, epsilon,
                          alpha_bkw, reduce_axes):
    z = xs * ops.rsqrt(normalizer + epsilon)
    approximate = upstream - (1.0 - alpha_bkw) * backward_statistic * z
    new_backward_statistic = backward_statistic + ops.mean(
        approximate * z, axis=reduce_axes, keepdims=True
    )
    return (
        approximate * ops.rsqrt(quadratic_mean + epsilon),
        ops.zeros_like(quadratic_mean),
        ops.zeros_like(normalizer),
        new_backward_statistic,
    )
