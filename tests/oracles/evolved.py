"""The EvoNorm search space's primitives in float64 numpy, from docs/search.md ("The search space").

A genome's nodes are evaluated on `x` moved to channels-last and flattened to (N, P, C). Every
value is kept at full shape (N, P, C); aggregates are computed over their index set and repeated
back over it. Masks are not modelled here (the layer's masked aggregates reuse the masked moments
tested elsewhere). Written to be analytic for complex-step derivatives: signs, absolute values and
comparisons read the real part, and variances square without conjugating.
"""

import numpy as np


def _sign(z):
    return np.where(np.real(z) >= 0, 1.0, -1.0)


def _abs(z):
    return z * _sign(z)


def _maximum(a, b):
    a, b = np.broadcast_arrays(a, b)
    return np.where(np.real(a) >= np.real(b), a, b)


ELEMENTWISE = {
    "add": lambda a, b, eps: a + b,
    "mul": lambda a, b, eps: a * b,
    "div": lambda a, b, eps: a / (_sign(b) * _maximum(_abs(b), eps)),
    "max": lambda a, b, eps: _maximum(a, b),
    "neg": lambda a, eps: -a,
    "sigmoid": lambda a, eps: 1.0 / (1.0 + np.exp(-a)),
    "tanh": lambda a, eps: np.tanh(a),
    "exp": lambda a, eps: np.exp(a),
    "log": lambda a, eps: np.sign(np.real(a)) * np.log(_abs(a) + eps),
    "abs": lambda a, eps: _abs(a),
    "square": lambda a, eps: a * a,
    "sqrt": lambda a, eps: _sign(a) * np.sqrt(_abs(a) + eps),
}


def _statistic(values, statistic):
    """`values`: (..., k) samples along the last axis."""
    if statistic == "mean":
        return values.mean(axis=-1)
    if statistic == "mean_square":
        return (values**2).mean(axis=-1)
    return ((values - values.mean(axis=-1, keepdims=True)) ** 2).mean(axis=-1)


def _aggregate(t, statistic, index_set, groups):
    n, p, c = t.shape
    if index_set == "batch":  # per channel, over samples and positions
        value = _statistic(t.reshape(n * p, c).T, statistic)  # (C,)
        return np.broadcast_to(value, t.shape).copy(), value
    if index_set == "instance":  # per sample and channel, over positions
        value = _statistic(np.transpose(t, (0, 2, 1)), statistic)  # (N, C)
        return np.broadcast_to(value[:, None, :], t.shape).copy(), None
    size = c // groups  # per sample and group, over positions and the group's channels
    grouped = t.reshape(n, p, groups, size).transpose(0, 2, 1, 3).reshape(n, groups, p * size)
    value = _statistic(grouped, statistic)  # (N, G)
    return np.broadcast_to(np.repeat(value, size, axis=1)[:, None, :], t.shape).copy(), None


def evolved(
    x, nodes, *, v0, v1, gamma, beta, channel_axis=-1, groups=1, epsilon=1e-5, training=True, moving=None, momentum=0.9
):
    """Returns `(y, new_moving)`: `y = graph(x) * gamma + beta` and, in training, the moving value
    of each batch aggregate (node index -> (C,) array) after the update; `moving` holds the
    current ones (used at inference)."""
    x = np.asarray(x) if np.iscomplexobj(x) else np.asarray(x, np.float64)
    moved = np.moveaxis(x, channel_axis, -1)
    n, c = moved.shape[0], moved.shape[-1]
    flat = moved.reshape(n, -1, c)
    full = flat.shape
    values = [flat, np.zeros(full), np.broadcast_to(v0, full), np.broadcast_to(v1, full)]
    gamma, beta = np.broadcast_to(gamma, full), np.broadcast_to(beta, full)
    new_moving = dict(moving or {})
    for primitive, inputs in nodes:
        arguments = [values[i] for i in inputs]
        if primitive in ELEMENTWISE:
            values.append(ELEMENTWISE[primitive](*arguments, epsilon))
            continue
        statistic, _, index_set = primitive.rpartition("_")
        index = len(values)
        if index_set == "batch" and not training:
            values.append(np.broadcast_to(moving[index], full).copy())
            continue
        value, batch_value = _aggregate(arguments[0], statistic, index_set, groups)
        if batch_value is not None:
            new_moving[index] = momentum * moving[index] + (1 - momentum) * batch_value
        values.append(value)
    y = values[-1] * gamma + beta
    y = np.moveaxis(y.reshape(moved.shape), -1, channel_axis)
    return y, new_moving
