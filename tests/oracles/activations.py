"""Float64 numpy oracles of the activations, written from docs/references/activations.md."""

import math

import numpy as np


def relu(x):
    # Branch on the real part so that complex-step differentiation goes through.
    return np.where(np.real(x) > 0, x, 0)


def hermite_series(x, coefficients):
    """`sum_i a_i He_i(x) / sqrt(i!)` via numpy's own probabilists' Hermite series."""
    scaled = [a / math.sqrt(math.factorial(i)) for i, a in enumerate(coefficients)]
    return np.polynomial.hermite_e.hermeval(x, scaled)


def interpolated(x, fn_a, fn_b, alpha):
    return alpha * fn_a(x) + (1 - alpha) * fn_b(x)


def crrelu(x, epsilon):
    return relu(x) + epsilon * x * np.exp(-(x**2) / 2)


def gaussian_dual(phi, rho, num_points=64):
    """`E[phi(U) phi(V)]` for standard Gaussians with correlation `rho`, by evaluating the numpy function
    `phi` on a 2-D Gauss-Hermite grid: `V = rho U + sqrt(1 - rho**2) W`, `U`, `W` independent.

    Exact to rounding when `phi` is a polynomial of degree below `num_points`.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(num_points)
    weights = weights / math.sqrt(2 * math.pi)
    u, w = np.meshgrid(nodes, nodes, indexing="ij")
    v = rho * u + math.sqrt(1 - rho**2) * w
    integrand = phi(u.ravel()).reshape(u.shape) * phi(v.ravel()).reshape(v.shape)
    return float(weights @ integrand @ weights)


def sine_activation(x, a):
    """`sqrt(e**a / sinh a) * sin(sqrt(a) x)`, whose dual is `sinh(a rho) / sinh(a)` (arXiv 2204.14126's "sine")."""
    return math.sqrt(math.exp(a) / math.sinh(a)) * np.sin(math.sqrt(a) * x)
