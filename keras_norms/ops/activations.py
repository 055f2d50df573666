"""Activation formulas."""

from keras import ops


def crrelu(x, epsilon):
    """CRReLU: `relu(x) + epsilon * x * exp(-x**2 / 2)` (Sun et al., arXiv 2405.12954)."""
    return ops.relu(x) + epsilon * x * ops.exp(-0.5 * ops.square(x))
