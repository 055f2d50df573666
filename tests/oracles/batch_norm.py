"""Float64 numpy oracle of alpha-BN (docs/references/normalization.md, section 'alpha-BN'): unbiased test variance."""

import numpy as np


def alpha_batch_norm(x, moving_mean, moving_variance, gamma, beta, test_weight, epsilon, weights=None):
    """Channels-last `x`; `weights` (x's shape without channels) marks the valid positions."""
    axes = tuple(range(x.ndim - 1))
    w = np.ones(x.shape[:-1]) if weights is None else weights.astype(np.float64)
    w = w[..., None]
    count = w.sum(axis=axes)
    mean = (x * w).sum(axis=axes) / count
    variance = (((x - mean) ** 2) * w).sum(axis=axes) / (count - 1)
    mu = (1 - test_weight) * moving_mean + test_weight * mean
    var = (1 - test_weight) * moving_variance + test_weight * variance
    return gamma * (x - mu) / np.sqrt(var + epsilon) + beta
