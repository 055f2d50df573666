"""PowerNorm formulas (Shen, Yao, Gholami, Mahoney, Keutzer, "PowerNorm: Rethinking Batch
Normalization in Transformers", ICML 2020, arXiv 2003.07845), as the authors' code computes them
(`sIncerass/powernorm`, `fairseq/modules/norms/mask_powernorm.py`), not as the paper's algorithm
box states them.

Names: `quadratic_mean` is the per-channel mean of squares (the paper's psi^2), the moving one is
the code's `running_phi`, and `backward_statistic` is the code's `ema_gz`.
"""

from collections.abc import Sequence

from keras import ops

from keras_norms.backend import with_fast_path
from keras_norms.ops.distributed import replica_count
from keras_norms.ops.rms import rms_normalization
from keras_norms.ops.statistics import element_count, masked_mean_square, split_groups
from keras_norms.ops.types import Tensor

# The authors' GroupScaling1D hard-wires its own epsilon; the layer's epsilon is not used there.
GROUP_SCALING_EPSILON = 1e-5


def group_scaling(x: Tensor, channel_axis: int, groups: int) -> Tensor:
    """Divides each token by the root mean square of its channel group: RMSNorm without gain.

    `x / sqrt(mean_{channels of the group}(x**2) + 1e-5)`, groups of `channels // groups`
    contiguous channels (the code's pre-step, in training and inference alike).
    """
    if groups == 1:  # no grouped view: XLA materializes the broadcast back from a 5-D one
        return rms_normalization(x, channel_axis, GROUP_SCALING_EPSILON)
    grouped = split_groups(x, channel_axis, groups)
    # RMSNorm without gain over each group: channels-last, the trailing axis, where torch's
    # `F.rms_norm` and the kernels serve it.
    scaled = rms_normalization(grouped, channel_axis + 1, GROUP_SCALING_EPSILON)
    return ops.reshape(scaled, ops.shape(x))


def updated_moving_quadratic_mean(
    moving: Tensor, quadratic_mean: Tensor, step: Tensor, warmup_steps: int, alpha_fwd: float
) -> Tensor:
    """The code's `running_phi` update after training step `step` (counted from 1).

    During warmup (`step < warmup_steps`) a cumulative average runs first, and the exponential
    average runs on every step, so warmup steps apply both (reproduced as written).
    """
    step = ops.cast(step, moving.dtype)
    cumulative = moving * (step - 1.0) / step + quadratic_mean / step
    moving = ops.where(step < warmup_steps, cumulative, moving)
    return alpha_fwd * moving + (1.0 - alpha_fwd) * quadratic_mean


def _on_one_replica(*args, synchronized=False, **kwargs):
    return not (synchronized and replica_count() > 1)


@with_fast_path("power_normalization", applicable=_on_one_replica)
def power_normalization(
    xs: Tensor,
    quadratic_mean: Tensor,
    normalizer: Tensor,
    scaled_statistic: Tensor,
    statistic_scale: Tensor,
    *,
    epsilon: float,
    alpha_bkw: float,
    reduce_axes: Sequence[int],
    synchronized: bool = False,
) -> tuple[Tensor, Tensor]:
    """`z = xs / sqrt(normalizer + eps)` with the code's approximate backward pass, by plain autodiff.

    Returns `(z, auxiliary_loss)`; `auxiliary_loss` is zero-valued and must be added to the
    training loss (`Layer.add_loss`). With `g` the upstream gradient of `z`, the gradients are:

    - `dL/dxs = (g - nu * z) / sqrt(quadratic_mean + eps)`, `nu = (1 - alpha_bkw) * statistic`,
      dividing by the *batch* statistic even after warmup, as the code does; no gradient reaches
      either statistic;
    - `dL/dscaled_statistic = statistic + mean_{positions}((g - nu * z) * z)`: the code's new
      `ema_gz`; and `dL/dstatistic_scale = 1`.

    Every gradient of the loss is multiplied by the loss scale `S` when one is used, these two
    as well, and variables created with `overwrite_with_gradient=True` receive them unscaled.
    So `scaled_statistic` holds `S * ema_gz` and `statistic_scale` holds `S`, and
    `statistic = scaled_statistic / statistic_scale` is right whether or not `S` changed between
    steps (without loss scaling `S = 1`). The correction `-nu * z / sqrt(.)` enters through the
    auxiliary loss for the same reason: it must be scaled by `S` like `g`.

    With `synchronized`, the means over positions (`positions`, the decay's mean of `z**2`) are
    over every replica's positions, so that averaging the replicas' gradients, as data-parallel
    training does, gives the single-device values.
    """
    sg = ops.stop_gradient
    batch_rsqrt = ops.rsqrt(sg(quadratic_mean) + epsilon)
    z_value = sg(xs * ops.rsqrt(sg(normalizer) + epsilon))
    statistic = sg(scaled_statistic / statistic_scale)
    positions = element_count(xs, reduce_axes, synchronized)  # synchronized: the global batch's
    # Value z_value; d/dxs = batch_rsqrt; d/dscaled_statistic = sum(g * z) / positions.
    z = z_value + (xs - sg(xs)) * batch_rsqrt
    z = z + (scaled_statistic - sg(scaled_statistic)) * z_value / positions
    nu = (1.0 - alpha_bkw) * statistic
    decay = 1.0 - (1.0 - alpha_bkw) * masked_mean_square(z_value, reduce_axes, synchronized=synchronized)
    auxiliary = (
        ops.sum(sg(-nu * z_value * batch_rsqrt) * xs)
        + ops.sum(scaled_statistic * sg(statistic * decay))
        + statistic_scale
    )
    return z, auxiliary - sg(auxiliary)
