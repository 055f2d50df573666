"""Activations given by Hermite coefficients, and the dual-kernel statistics of any activation.

Paper: Radhakrishnan, Belkin, Uhler, "Wide and Deep Neural Networks Achieve Optimality for
Classification" (PNAS 2023: "... achieve consistency ..."), arXiv 2204.14126.

The paper's own explicit activations are NOT included: their formulas could not be sourced. What
is here is the general tool the paper's taxonomy is stated in: an activation written in
normalized Hermite polynomials, and its dual kernel `xi`.
"""

import collections
import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_norms.arguments import check_bool, check_int, check_number
from keras_norms.ops import activations as activation_ops
from keras_norms.ops.dtypes import upcast
from keras_norms.ops.types import Shape, Tensor

_REGIMES = ("nearest_neighbor", "singular_kernel", "majority_vote")


def _check_coefficients(coefficients):
    values = np.asarray(coefficients, dtype=object)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"`coefficients` must be a non-empty 1-D sequence of numbers. Received: coefficients={coefficients!r}"
        )
    return [check_number(f"coefficients[{i}]", value) for i, value in enumerate(values.tolist())]


@keras.saving.register_keras_serializable(package="keras_norms")
class HermiteActivation(keras.layers.Layer):
    """An activation written in normalized Hermite polynomials: `sum_i a_i He_i(x) / sqrt(i!)`.

    `He_i` are the probabilists' Hermite polynomials, orthonormal (after the `sqrt(i!)`) under the
    standard Gaussian, so `a_i = E[phi(X) He_i(X)] / sqrt(i!)` for `X ~ N(0, 1)` and the dual kernel
    of the activation is `xi(rho) = sum_i a_i**2 rho**i`. `dual_statistics()` returns `xi(1)`,
    `xi'(1)` and the infinite-depth regime they put a wide network in (see
    `dual_activation_stats`).

    The paper (arXiv 2204.14126) gives explicit activations for the optimal, singular-kernel
    regime; their formulas could not be sourced, so none is shipped under the paper's name. For
    example `a = [c, sqrt(1 - 2 c**2), c]` (any `|c| < 1/sqrt(2)`) has `xi(1) = xi'(1) = 1`.

    Computed in float32 (float64 for a float64 layer), output cast to the compute dtype.

    Args:
        coefficients: The `a_i`, lowest degree first.
        trainable_coefficients: Learn the coefficients (default False: a fixed activation).
        **kwargs: Base layer keyword arguments.

    Example:

    >>> layer = keras_norms.activations.HermiteActivation([0.3, 0.82462, 0.3])
    >>> layer.dual_statistics().regime
    'singular_kernel'
    """

    def __init__(self, coefficients: Sequence[float], trainable_coefficients: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.coefficients = _check_coefficients(coefficients)
        self.trainable_coefficients = check_bool("trainable_coefficients", trainable_coefficients)
        self.supports_masking = True
        self.autocast = False
        self.coefficient_weights = self.add_weight(
            name="coefficients",
            shape=(len(self.coefficients),),
            initializer=keras.initializers.Constant(self.coefficients),
            trainable=self.trainable_coefficients,
            autocast=False,
        )
        self.built = True

    def call(self, inputs: Tensor) -> Tensor:
        x = upcast(inputs, self.compute_dtype)
        y = activation_ops.hermite_series(x, ops.cast(self.coefficient_weights, x.dtype))
        return ops.cast(y, self.compute_dtype)

    def dual_statistics(self, tolerance: float = 1e-6) -> "DualActivationStats":
        """`dual_activation_stats` of the current coefficients."""
        values = ops.convert_to_numpy(self.coefficient_weights.value)
        return dual_activation_stats(values.astype(np.float64).tolist(), tolerance=tolerance)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "coefficients": list(self.coefficients),
                "trainable_coefficients": self.trainable_coefficients,
            }
        )
        return config


DualActivationStats = collections.namedtuple(
    "DualActivationStats", ["xi_at_one", "xi_prime_at_one", "ratio", "regime", "xi"]
)
DualActivationStats.__doc__ = """Dual-kernel statistics of an activation `phi`.

Fields:
    xi_at_one: `xi(1) = E[phi(X)**2]`, `X ~ N(0, 1)`.
    xi_prime_at_one: `xi'(1) = E[phi'(X)**2]`.
    ratio: `xi'(1) / xi(1)`: `xi'(1)` of `phi` rescaled to `xi(1) = 1`.
    regime: `"nearest_neighbor"` (ratio > 1), `"majority_vote"` (ratio < 1) or
        `"singular_kernel"` (ratio = 1 within the tolerance).
    xi: `xi(rho) = E[phi(U) phi(V)]` for standard Gaussians with correlation `rho`, a function.
"""


def dual_activation_stats(
    activation: Sequence[float] | HermiteActivation | Callable[[np.ndarray], np.ndarray],
    num_points: int = 200,
    derivative: Callable[[np.ndarray], np.ndarray] | None = None,
    tolerance: float = 1e-6,
) -> DualActivationStats:
    """The dual kernel `xi` of an activation, `xi(1)`, `xi'(1)` and its infinite-depth regime.

    For an activation `phi` and standard Gaussians `U, V` with correlation `rho`, the dual kernel
    is `xi(rho) = E[phi(U) phi(V)] = sum_i a_i**2 rho**i` (`a_i` the normalized Hermite
    coefficients). A deep, infinitely wide network on unit-norm inputs with `phi` normalized to
    `xi(1) = 1` falls, as depth grows, into the regime set by `xi'(1)`: 1-nearest-neighbour when
    `xi'(1) > 1`, majority vote when `xi'(1) < 1`, and the singular-kernel classifiers (which
    contain the optimal ones) at `xi'(1) = 1` (Radhakrishnan, Belkin, Uhler, arXiv 2204.14126).
    The rule written here is our derivation of that taxonomy from the NTK depth recursion, checked
    numerically (e.g. `sqrt(2) * relu` and `[c, sqrt(1 - 2c**2), c]` sit at `xi'(1) = 1`); the
    paper's explicit activations are not included. The guarantees are about infinite width and
    depth, NTK parameterization and gradient flow; a finite network gets none of them.

    Args:
        activation: Hermite coefficients (a sequence of numbers; exact), a `HermiteActivation`
            layer (exact), or a numpy function of a float64 array returning float64 (e.g.
            `np.tanh`, `lambda x: np.sqrt(2) * np.maximum(x, 0)`), integrated by Gauss-Hermite
            quadrature.
        num_points: Quadrature nodes per dimension (even, so no node sits on a kink at 0).
        derivative: The derivative of a function `activation`, for `xi'(1) = E[phi'(X)**2]`;
            default: central differences.
        tolerance: How close `xi'(1) / xi(1)` must be to 1 for `"singular_kernel"`.

    Returns:
        A `DualActivationStats`.

    Example:

    >>> stats = keras_norms.activations.dual_activation_stats(lambda x: np.sqrt(2) * np.maximum(x, 0))
    >>> stats.regime, round(stats.xi(0.0), 4)
    ('singular_kernel', 0.3183)
    """
    tolerance = check_number("tolerance", tolerance, minimum=0.0)
    if isinstance(activation, HermiteActivation):
        return activation.dual_statistics(tolerance)
    if callable(activation):
        num_points = check_int("num_points", num_points, minimum=2)
        if num_points % 2:
            raise ValueError(f"`num_points` must be even. Received: num_points={num_points}")
        xi, xi_at_one, xi_prime_at_one = _quadrature_dual(activation, num_points, derivative)
    else:
        coefficients = np.asarray(_check_coefficients(activation), dtype=np.float64)
        powers = np.arange(coefficients.size)

        def xi(rho):
            return float(np.sum(coefficients**2 * np.float64(rho) ** powers))

        xi_at_one = float(np.sum(coefficients**2))
        xi_prime_at_one = float(np.sum(powers * coefficients**2))
    if xi_at_one <= 0:
        raise ValueError(f"The activation is zero almost everywhere: xi(1) = {xi_at_one}")
    ratio = xi_prime_at_one / xi_at_one
    if abs(ratio - 1.0) <= tolerance:
        regime = "singular_kernel"
    else:
        regime = "nearest_neighbor" if ratio > 1 else "majority_vote"
    return DualActivationStats(xi_at_one, xi_prime_at_one, ratio, regime, xi)


def _evaluate(function, x, name):
    values = np.asarray(function(x))
    if values.dtype != np.float64 or values.shape != x.shape:
        raise TypeError(
            f"`{name}` must map a float64 numpy array to a float64 array of the same shape; it "
            f"returned dtype={values.dtype}, shape={values.shape} for shape={x.shape}. Keras "
            "activations compute in float32: pass a numpy version (e.g. np.tanh)."
        )
    return values


def _quadrature_dual(activation, num_points, derivative):
    nodes, weights = np.polynomial.hermite_e.hermegauss(num_points)
    weights = weights / math.sqrt(2 * math.pi)  # a probability measure: N(0, 1)
    phi = _evaluate(activation, nodes, "activation")
    if derivative is None:
        step = 1e-5
        slope = (
            _evaluate(activation, nodes + step, "activation") - _evaluate(activation, nodes - step, "activation")
        ) / (2 * step)
    else:
        slope = _evaluate(derivative, nodes, "derivative")

    def xi(rho):
        rho = check_number("rho", rho, minimum=-1.0, maximum=1.0)
        # V = rho U + sqrt(1 - rho^2) W with U, W independent standard Gaussians.
        v = rho * nodes[:, None] + math.sqrt(1.0 - rho * rho) * nodes[None, :]
        phi_v = _evaluate(activation, v.ravel(), "activation").reshape(v.shape)
        return float(np.einsum("i,j,i,ij->", weights, weights, phi, phi_v))

    return xi, float(np.sum(weights * phi**2)), float(np.sum(weights * slope**2))
