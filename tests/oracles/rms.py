"""RMSNorm and CRMSNorm in float64 numpy, from ../shared/specs/normalization.md section 3."""

import numpy as np


def _affine(y, gamma, beta, zero_centered_gamma):
    if gamma is not None:
        y = y * (1 + gamma if zero_centered_gamma else gamma)
    return y if beta is None else y + beta


def rms_norm(x, axes, epsilon, gamma=None, beta=None, zero_centered_gamma=False):
    """`x / sqrt(mean(x**2, axes) + eps) * gamma + beta`; gamma and beta already broadcastable."""
    y = x / np.sqrt(np.mean(x**2, axis=axes, keepdims=True) + epsilon)
    return _affine(y, gamma, beta, zero_centered_gamma)


def crms_norm(z, epsilon, gamma=None, beta=None, zero_centered_gamma=False):
    """CRMSNorm over the last axis: `z` holds d-1 coordinates of a zero-mean d-vector."""
    d = z.shape[-1] + 1
    mean_square = (np.sum(z**2, axis=-1, keepdims=True) + np.sum(z, axis=-1, keepdims=True) ** 2) / d
    return _affine(z / np.sqrt(mean_square + epsilon), gamma, beta, zero_centered_gamma)
