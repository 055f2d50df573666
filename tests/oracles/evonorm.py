"""EvoNorm in float64 numpy, from docs/references/normalization.md, section 'EvoNorm'.

Inputs are moved to channels-last and flattened to (N, P, C): positions P, channels C. Masks are
(N, P) weights. Variances are biased; `eps` sits inside every square root.
"""

import numpy as np

BATCH_VARIANTS = ("B0", "B1", "B2")
SAMPLE_VARIANTS = ("S0", "S1", "S2", "S0a", "S1a", "S2a")


def _flatten(x, channel_axis):
    moved = np.moveaxis(x, channel_axis, -1)
    return moved.reshape(moved.shape[0], -1, moved.shape[-1]), moved.shape


def _unflatten(y, moved_shape, channel_axis):
    return np.moveaxis(y.reshape(moved_shape), -1, channel_axis)


def _weighted_mean(values, weights, axes):
    """Mean of `values` over `axes` counting only weight-1 positions; 0 where none is valid."""
    count = np.sum(np.broadcast_to(weights, values.shape), axis=axes, keepdims=True)
    return np.sum(values * weights, axis=axes, keepdims=True) / np.maximum(count, 1)


def _variance(values, weights, axes):
    mean = _weighted_mean(values, weights, axes)
    return _weighted_mean((values - mean) ** 2, weights, axes)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _maximum(a, b):
    # Real-part comparison keeps complex-step derivatives exact away from ties.
    a, b = np.broadcast_arrays(a, b)
    return np.where(a.real >= b.real, a, b)


def evonorm(
    x,
    variant,
    gamma,
    beta,
    v,
    *,
    channel_axis,
    epsilon,
    apply_act=True,
    training=True,
    moving_variance=None,
    momentum=0.9,
    bessel_correction=False,
    groups=None,
    mask=None,
):
    """Returns `(y, new_moving_variance)`; the latter is None for sample variants or inference."""
    flat, moved_shape = _flatten(x, channel_axis)
    n, p, c = flat.shape
    weights = np.ones((n, p, 1)) if mask is None else mask.reshape(n, p, 1).astype(np.float64)
    new_moving_variance = None
    if variant in BATCH_VARIANTS and apply_act:
        if training:
            batch_variance = _variance(flat, weights, (0, 1))
            count = np.sum(np.broadcast_to(weights, flat.shape), axis=(0, 1)).real
            update = batch_variance.reshape(c).real
            if bessel_correction:
                update = update * count / np.maximum(count - 1, 1)
            new_moving_variance = momentum * moving_variance + (1 - momentum) * update
        else:
            batch_variance = moving_variance.reshape(1, 1, c)
        left = np.sqrt(batch_variance + epsilon)
        if variant == "B0":
            right = v * flat + np.sqrt(_variance(flat, weights, (1,)) + epsilon)
        elif variant == "B1":
            right = (flat + 1) * np.sqrt(_weighted_mean(flat**2, weights, (1,)) + epsilon)
        else:
            right = np.sqrt(_weighted_mean(flat**2, weights, (1,)) + epsilon) - flat
        y = flat / _maximum(left, right)
    elif variant in SAMPLE_VARIANTS and (apply_act or variant.endswith("a")):
        grouped = flat.reshape(n, p, groups, c // groups)
        group_weights = weights.reshape(n, p, 1, 1)
        if variant.startswith("S2"):
            statistic = _weighted_mean(grouped**2, group_weights, (1, 3))
        else:
            statistic = _variance(grouped, group_weights, (1, 3))
        denominator = np.broadcast_to(np.sqrt(statistic + epsilon), grouped.shape).reshape(n, p, c)
        if apply_act:
            gate = _sigmoid(v * flat) if variant.startswith("S0") else _sigmoid(flat)
            y = flat * gate / denominator
        else:
            y = flat / denominator
    else:
        y = flat
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return _unflatten(y, moved_shape, channel_axis), new_moving_variance
