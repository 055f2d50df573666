"""Float64 numpy oracles of the losses, written from docs/references/losses.md.

All are analytic in their inputs, so complex-step differentiation gives exact gradients.
"""

import numpy as np


def softplus(x):
    return np.log1p(np.exp(x))


def logsumexp(x, axis=-1):
    top = np.max(np.real(x), axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.sum(np.exp(x - top), axis=axis))


def take(values, labels):
    return np.take_along_axis(values, labels[..., None], axis=-1)[..., 0]


def z_loss(labels, logits, a, b, epsilon=0.0):
    mean = logits.mean(-1, keepdims=True)
    sigma = np.sqrt(np.mean(logits**2, -1, keepdims=True) - mean**2 + epsilon)
    z = (logits - mean) / sigma
    return softplus(a * (b - take(z, labels))) / a


def log_mean_logistic(labels, logits):
    margins = (2 * labels - 1) * logits
    return np.log(np.mean(softplus(-margins)))


def tau_dro(labels, logits, tau, rho, vocab_size):
    """The reference form: tau * CE(logits / tau, label) + (rho - log V) * tau."""
    scaled = logits / tau[..., None]
    cross_entropy = logsumexp(scaled) - take(scaled, labels)
    return tau * cross_entropy + (rho - np.log(vocab_size)) * tau
