"""Float64 oracles of FRN, TLU (arXiv 1911.09737; tensorflow-addons' learned epsilon).

Complex-step safe: `maximum` and `abs` decide on the real part, so `complex_step_vjp`
differentiates them exactly away from ties.
"""

import numpy as np


def _maximum(a, b):
    a, b = np.broadcast_arrays(a, b)
    return np.where(np.real(a) >= np.real(b), a, b)


def _abs(a):
    return np.where(np.real(a) >= 0, a, -a)


def _per_channel(parameter, rank, channel_axis):
    shape = [1] * rank
    shape[channel_axis] = -1
    return np.reshape(parameter, shape)


def tlu(x, tau, channel_axis=-1, alpha=None):
    rank = x.ndim
    tau = _per_channel(tau, rank, channel_axis)
    if alpha is None:
        return _maximum(x, tau)
    return _maximum(x, _per_channel(alpha, rank, channel_axis) * x + tau)


def filter_response_norm(x, gamma, beta, tau, epsilon, channel_axis=-1, mask=None, learned_epsilon=None):
    """`max(gamma * x / sqrt(mean_positions(x**2) + eps) + beta, tau)`; `tau=None`: no TLU.

    `mask` (the input's shape without the channels axis) leaves positions out of the mean.
    `eps = epsilon + |learned_epsilon|` when a learned value is given. `gamma`/`beta` None: unused.
    """
    rank = x.ndim
    channel_axis = channel_axis % rank
    spatial = tuple(a for a in range(1, rank) if a != channel_axis)
    weights = np.ones(x.shape[:channel_axis] + (1,) + x.shape[channel_axis + 1 :])
    if mask is not None:
        weights = np.expand_dims(mask.astype(np.float64), channel_axis)
    weights = np.broadcast_to(weights, x.shape)
    mean_square = np.sum(x * x * weights, axis=spatial, keepdims=True) / np.maximum(
        np.sum(weights, axis=spatial, keepdims=True), 1.0
    )
    eps = epsilon if learned_epsilon is None else epsilon + _abs(learned_epsilon)
    y = x / np.sqrt(mean_square + eps)
    if gamma is not None:
        y = y * _per_channel(gamma, rank, channel_axis)
    if beta is not None:
        y = y + _per_channel(beta, rank, channel_axis)
    return y if tau is None else tlu(y, tau, channel_axis)
