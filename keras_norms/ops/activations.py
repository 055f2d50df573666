"""Activation formulas."""

from keras import ops

from keras_norms.ops.types import Tensor


def crrelu(x: Tensor, epsilon: float | Tensor) -> Tensor:
    """CRReLU: `relu(x) + epsilon * x * exp(-x**2 / 2)` (Sun et al., arXiv 2405.12954)."""
    return ops.relu(x) + epsilon * x * ops.exp(-0.5 * ops.square(x))


def interpolate(value_a: Tensor, value_b: Tensor, alpha: float | Tensor) -> Tensor:
    """`alpha * value_a + (1 - alpha) * value_b`: the interpolated activation of arXiv 2501.13734."""
    return alpha * value_a + (1.0 - alpha) * value_b


def hermite_series(x: Tensor, coefficients: Tensor) -> Tensor:
    """`sum_i coefficients[i] * He_i(x) / sqrt(i!)`: a series in normalized Hermite polynomials.

    `He_i` are the probabilists' Hermite polynomials (`He_0 = 1`, `He_1 = x`,
    `He_{i+1} = x He_i - i He_{i-1}`); `h_i = He_i / sqrt(i!)` are orthonormal under the standard
    Gaussian. `coefficients` is a 1-D tensor whose length (the degree + 1) must be static.
    Evaluated with the normalized three-term recurrence
    `h_{i+1} = (x h_i - sqrt(i) h_{i-1}) / sqrt(i + 1)`, which keeps every term O(1) for `|x|` of a
    few units instead of growing like `i!`.
    """
    degree = coefficients.shape[0] - 1
    previous = ops.ones_like(x)
    result = coefficients[0] * previous
    if degree == 0:
        return result
    current = x
    result = result + coefficients[1] * current
    for i in range(1, degree):
        following = (x * current - i**0.5 * previous) / (i + 1) ** 0.5
        previous, current = current, following
        result = result + coefficients[i + 1] * current
    return result
