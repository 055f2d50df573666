"""Activations given by Hermite coefficients, the paper's "optimal" activations as presets, and the
dual-kernel statistics (the infinite-depth regime) of any activation.

Paper: Radhakrishnan, Belkin, Uhler, "Wide and Deep Neural Networks Achieve Optimality for
Classification" (PNAS 2023: "... achieve consistency ..."), arXiv 2204.14126.

The presets are the activations behind the dual kernels of the authors' code
(github.com/uhlerlab/inf_depth_ntks, `models.py`, `dual_act`): an activation with dual
`sum_k c_k rho**k` (every `c_k >= 0`) has normalized Hermite coefficients `sqrt(c_k)`, up to signs.
"""

import collections
import math
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from keras_norms.arguments import check_bool, check_int, check_number
from keras_norms.ops import activations as activation_ops
from keras_norms.ops.dtypes import upcast
from keras_norms.ops.types import Shape, Tensor


def _check_coefficients(coefficients):
    values = np.asarray(coefficients, dtype=object)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"`coefficients` must be a non-empty 1-D sequence of numbers. Received: coefficients={coefficients!r}"
        )
    return [check_number(f"coefficients[{i}]", value) for i, value in enumerate(values.tolist())]


HermitePreset = collections.namedtuple("HermitePreset", ["dimension", "dual", "dual_derivative", "coefficients"])
HermitePreset.__doc__ = """One of the paper's "optimal" activations (`HermiteActivation.PRESETS[name]`).

Fields:
    dimension: The data dimension `d` it is made for (unit-norm inputs on the sphere `S^(d-1)`):
        its singular-kernel exponent `2 ln(1 / g'(0)) / ln g'(1)` is `d - 1`.
    dual: The closed-form dual `g(rho)` of the authors' code, a numpy function (float64 in,
        float64 out).
    dual_derivative: `g'(rho)`, a numpy function.
    coefficients: The normalized Hermite coefficients the preset layer gets, lowest degree first.
"""

# The sinh duals are truncated where the omitted part of the dual's power series, which bounds
# |g - g_truncated| on [-1, 1] and is the squared Gaussian L2 distance of the two activations, is below this.
SINH_TRUNCATION = 1e-12


def _power_series(coefficients):
    """`rho -> sum_k coefficients[k] rho**k` on float64 arrays, by Horner's rule in place (zero terms skipped)."""

    def evaluate(rho):
        rho = np.asarray(rho, dtype=np.float64)
        result = np.full(rho.shape, coefficients[-1])
        for coefficient in coefficients[-2::-1]:
            result *= rho
            if coefficient:
                result += coefficient
        return result[()]

    return evaluate


def _polynomial_preset(dimension, dual_coefficients):
    derivative = [k * c for k, c in enumerate(dual_coefficients)][1:]
    return HermitePreset(
        dimension,
        _power_series(dual_coefficients),
        _power_series(derivative),
        tuple(math.sqrt(c) for c in dual_coefficients),
    )


def _sinh_series(a):
    """The odd power-series coefficients `c_k = a**k / (k! sinh a)`, `k = 1, 3, ..., K`, up to the first
    odd degree `K` whose omitted tail is provably below `SINH_TRUNCATION`.

    Past `K` the ratio of consecutive omitted terms, `c_(k+2) / c_k = a**2 / ((k+1)(k+2))`, is at most
    `r = a**2 / ((K+3)(K+4))`, so the tail is at most `c_(K+2) / (1 - r)` (a geometric series) when `r < 1`.
    """
    terms = [a / math.sinh(a)]
    while True:
        degree = 2 * len(terms) - 1
        following = terms[-1] * a * a / ((degree + 1) * (degree + 2))
        ratio = a * a / ((degree + 3) * (degree + 4))
        if ratio < 1 and following / (1 - ratio) < SINH_TRUNCATION:
            return terms
        terms.append(following)


def _sine_preset(dimension, a):
    # sqrt(e**a / sinh a) * sin(sqrt(a) x) has the dual sinh(a rho) / sinh(a) (E[sin(wU) sin(wV)] =
    # exp(-w**2) sinh(w**2 rho)); its Hermite coefficients alternate in sign: (-1)**((k-1)/2) sqrt(c_k).
    coefficients = []
    for i, term in enumerate(_sinh_series(a)):
        coefficients += [0.0, (-1) ** i * math.sqrt(term)]
    return HermitePreset(
        dimension,
        lambda rho: np.sinh(a * rho) / math.sinh(a),
        lambda rho: a * np.cosh(a * rho) / math.sinh(a),
        tuple(coefficients),
    )


_PRESETS = {
    "optimal_2d": _polynomial_preset(2, [0.0, 1 / 2, 0.0, 0.0, 0.0, 0.0, 0.0, 1 / 2]),
    "optimal_3d": _polynomial_preset(3, [0.0, 1 / 2, 0.0, 1 / 2]),
    "optimal_5d": _polynomial_preset(5, [0.0, 1 / 4, 1 / 2, 1 / 4]),
    "optimal_9d": _polynomial_preset(9, [0.0, 1 / 16, 7 / 8, 1 / 16]),
    "sine_3d": _sine_preset(3, 2.676),
    "sine_5d": _sine_preset(5, 6.13539),
    "sine_9d": _sine_preset(9, 13.8258),
}


@keras.saving.register_keras_serializable(package="keras_norms")
class HermiteActivation(keras.layers.Layer):
    """An activation written in normalized Hermite polynomials: `sum_i a_i He_i(x) / sqrt(i!)`.

    `He_i` are the probabilists' Hermite polynomials, orthonormal (after the `sqrt(i!)`) under the
    standard Gaussian, so `a_i = E[phi(X) He_i(X)] / sqrt(i!)` for `X ~ N(0, 1)` and the dual kernel
    of the activation is `xi(rho) = E[phi(U) phi(V)] = sum_i a_i**2 rho**i` (`U`, `V` standard
    Gaussians with correlation `rho`). `dual_statistics()` returns the infinite-depth regime that
    dual puts a wide network in (see `dual_activation_stats`).

    Radhakrishnan, Belkin, Uhler (arXiv 2204.14126) build activations whose infinitely wide and
    deep networks are consistent classifiers on the sphere `S^(d-1)`. Their code gives the dual
    kernels; `HermiteActivation.preset(name)` realizes them (`HermiteActivation.PRESETS`):

    - `optimal_2d` (`d = 2`): `g(rho) = rho**7 / 2 + rho / 2`;
    - `optimal_3d` (`d = 3`): `g(rho) = rho**3 / 2 + rho / 2`;
    - `optimal_5d` (`d = 5`): `g(rho) = rho**3 / 4 + rho**2 / 2 + rho / 4`;
    - `optimal_9d` (`d = 9`): `g(rho) = rho**3 / 16 + 7 rho**2 / 8 + rho / 16`;
    - `sine_3d`, `sine_5d`, `sine_9d` (`d = 3, 5, 9`): `g(rho) = sinh(a rho) / sinh(a)`,
      `a = 2.676, 6.13539, 13.8258`.

    Each has `2 ln(1 / g'(0)) / ln g'(1) = d - 1` (the sine ones to 3e-5: `a` has 4 to 6 digits). The
    polynomial ones get the coefficients `sqrt(c_k)`; the sine ones are the Hermite series of
    `sqrt(e**a / sinh a) * sin(sqrt(a) x)` (signs `(-1)**((k-1)/2)`, same dual), truncated at the
    first odd degree (21, 31, 47) where the omitted part of the dual is below `1e-12`.

    Computed in float32 (float64 for a float64 layer), output cast to the compute dtype.

    Args:
        coefficients: The `a_i`, lowest degree first.
        trainable_coefficients: Learn the coefficients (default False: a fixed activation).
        **kwargs: Base layer keyword arguments.

    Example:

    >>> layer = keras_norms.activations.HermiteActivation.preset("optimal_3d")
    >>> layer.coefficients
    [0.0, 0.7071067811865476, 0.0, 0.7071067811865476]
    >>> stats = layer.dual_statistics()
    >>> stats.regime, round(stats.singular_exponent, 9)
    ('singular_kernel', 2.0)
    """

    PRESETS: ClassVar[Mapping[str, HermitePreset]] = types.MappingProxyType(_PRESETS)

    def __init__(self, coefficients: Sequence[float], trainable_coefficients: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.coefficients = _check_coefficients(coefficients)
        self.trainable_coefficients = check_bool("trainable_coefficients", trainable_coefficients)
        self.supports_masking = True
        self.autocast = False
        self.coefficient_weights = self.add_weight(
            name="coefficients",
            shape=(len(self.coefficients),),
            # A float64 array: TensorFlow would round a list through float32 first, even for float64.
            initializer=keras.initializers.Constant(np.asarray(self.coefficients, dtype=np.float64)),
            trainable=self.trainable_coefficients,
            autocast=False,
        )
        self.built = True

    @classmethod
    def from_dual(cls, coefficients: Sequence[float], **kwargs: Any) -> "HermiteActivation":
        """The activation whose dual kernel is `sum_k coefficients[k] * rho**k`.

        Its Hermite coefficients are `sqrt(coefficients[k])` (the sign of each is free; this takes
        `+`). A dual's coefficients are the squares of the activation's, so a negative one raises
        `ValueError`: no real activation has that dual.

        Args:
            coefficients: The dual's power-series coefficients `c_k >= 0`, lowest degree first.
            **kwargs: `HermiteActivation` keyword arguments.

        Example:

        >>> layer = keras_norms.activations.HermiteActivation.from_dual([0.0, 0.5, 0.0, 0.5])
        >>> round(layer.dual_statistics().xi(0.5), 6)  # 0.5**3 / 2 + 0.5 / 2
        0.3125
        """
        values = _check_coefficients(coefficients)
        for i, value in enumerate(values):
            if value < 0:
                raise ValueError(
                    "A dual kernel's power-series coefficients are the squares of the activation's "
                    f"Hermite coefficients, so none can be negative. Received: coefficients[{i}]={value!r}"
                )
        return cls([math.sqrt(value) for value in values], **kwargs)

    @classmethod
    def preset(cls, name: str, **kwargs: Any) -> "HermiteActivation":
        """One of the paper's "optimal" activations, by name (`HermiteActivation.PRESETS`).

        Args:
            name: `"optimal_2d"`, `"optimal_3d"`, `"optimal_5d"`, `"optimal_9d"`, `"sine_3d"`,
                `"sine_5d"` or `"sine_9d"`: the activation for unit-norm data in that dimension.
            **kwargs: `HermiteActivation` keyword arguments.

        Example:

        >>> phi = keras_norms.activations.HermiteActivation.preset("sine_3d")
        >>> len(phi.coefficients) - 1  # the degree
        21
        """
        if not isinstance(name, str) or name not in cls.PRESETS:
            raise ValueError(f"`name` must be one of {', '.join(cls.PRESETS)}. Received: name={name!r}")
        return cls(list(cls.PRESETS[name].coefficients), **kwargs)

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
    "DualActivationStats",
    [
        "xi_at_one",
        "xi_prime_at_one",
        "ratio",
        "regime",
        "xi",
        "xi_at_zero",
        "xi_prime_at_zero",
        "singular_exponent",
    ],
)
DualActivationStats.__doc__ = """Dual-kernel statistics of an activation `phi`.

Fields:
    xi_at_one: `xi(1) = E[phi(X)**2]`, `X ~ N(0, 1)`.
    xi_prime_at_one: `xi'(1) = E[phi'(X)**2]`.
    ratio: `xi'(1) / xi(1)`: `xi'(1)` of `phi` rescaled to `xi(1) = 1`.
    regime: The infinitely deep network's classifier: `"majority_vote"`, `"nearest_neighbor"`,
        `"singular_kernel"`, or `"linear"` (`xi(rho) = xi(1) rho`: depth changes nothing); see
        `dual_activation_stats`.
    xi: `xi(rho) = E[phi(U) phi(V)]` for standard Gaussians with correlation `rho`, a function.
    xi_at_zero: `xi(0) = E[phi(X)]**2`.
    xi_prime_at_zero: `xi'(0) = E[phi'(X)]**2 = E[X phi(X)]**2`.
    singular_exponent: In the `"singular_kernel"` regime, the `alpha` of the limiting kernel
        `~ ||x - z||**-alpha`: `2 ln(xi(1) / xi'(0)) / ln(xi'(1) / xi(1))`; None otherwise.
"""


def dual_activation_stats(
    activation: Sequence[float] | HermiteActivation | Callable[[np.ndarray], np.ndarray],
    num_points: int = 200,
    derivative: Callable[[np.ndarray], np.ndarray] | None = None,
    tolerance: float = 1e-6,
) -> DualActivationStats:
    """The dual kernel `xi` of an activation and the classifier an infinitely wide and deep network becomes.

    For an activation `phi` and standard Gaussians `U, V` with correlation `rho`, the dual kernel
    is `xi(rho) = E[phi(U) phi(V)] = sum_i a_i**2 rho**i` (`a_i` the normalized Hermite
    coefficients). Normalize it, `g = xi / xi(1)` (so `g(1) = 1`). On unit-norm inputs an
    infinitely wide network's NNGP kernel is `g` iterated once per layer, `Sigma^(l+1) = g(Sigma^l)`,
    and its NTK is `Theta^(l+1) = Theta^l g'(Sigma^l) + Sigma^(l+1)`. As the depth `L` grows,
    kernel regression with either becomes one of the classifiers of Radhakrishnan, Belkin, Uhler
    (arXiv 2204.14126), decided by the fixed point the off-diagonal `Sigma^L` converges to:

    - `"majority_vote"` when `g(0) > 0`: `g` is convex and increasing on `[0, 1]` (its power series
      has no negative coefficient), so the iterates converge to a fixed point `rho* > 0` (`rho* = 1`
      when `g'(1) <= 1`); every pair of inputs looks alike and the largest class wins. ReLU
      (`g(0) = 1 / pi`, `g'(1) = 1`) is here.
    - `g(0) = 0` and `g'(1) > 1`: the iterates decay to 0 like `g'(0)**L * c(rho)`, and the
      classifier is `sign(sum_i y_i c(<x_i, x>))`:

      - `"nearest_neighbor"` when `g'(0) = 0` (faster than geometric decay: the closest training
        point outweighs all others);
      - `"singular_kernel"` when `0 < g'(0) < 1`: `c(rho) = lim_L g^L(rho) / g'(0)**L` blows up at
        `rho = 1` like `||x - z||**-alpha` with `alpha = 2 ln(1 / g'(0)) / ln g'(1)`
        (`singular_exponent`; near `rho = 1`, each layer multiplies `1 - rho` by `g'(1)` until
        it is of order 1, and the remaining layers by `g'(0)`). With `alpha = d - 1`, the
        dimension of the sphere, this is the consistent Hilbert-estimate classifier, which the
        presets realize.

    - `"linear"`: `g(rho) = rho`, a linear network; depth changes nothing.

    The NTK reaches the same classifier: its diagonal grows like `g'(1)**L`, and its off-diagonal
    is `L g'(0)**L c(rho)` up to an `O(1/L)` relative correction (so it converges more slowly
    than the NNGP).

    Source: the taxonomy is the paper's (abstract); the conditions above are derived from the
    recursions and match the authors' code (github.com/uhlerlab/inf_depth_ntks): its "optimal"
    duals have `g(0) = 0 < g'(0) < 1 < g'(1)` and `alpha = d - 1`, the exponent of its Hilbert
    estimate (`devroye_classifier`, weights `(2 - 2 <x, z>)**(-(d-1)/2)`), and it notes that
    ReLU's deep NTK needs a depth past 50000 to reach majority vote. The guarantees are about
    infinite width and depth, kernel (NTK/NNGP) training and unit-norm inputs; a finite network
    gets none of them.

    Args:
        activation: Hermite coefficients (a sequence of numbers; exact), a `HermiteActivation`
            layer (exact), or a numpy function of a float64 array returning float64 (e.g.
            `np.tanh`, `lambda x: np.sqrt(2) * np.maximum(x, 0)`), integrated by Gauss-Hermite
            quadrature.
        num_points: Quadrature nodes per dimension (even, so no node sits on a kink at 0).
        derivative: The derivative of a function `activation`, for `xi'(1) = E[phi'(X)**2]`;
            default: central differences.
        tolerance: How close to 0 `g(0)` and `g'(0)`, and how close to 1 `g'(1)`, count as equal.

    Returns:
        A `DualActivationStats`.

    Example:

    >>> relu = keras_norms.activations.dual_activation_stats(lambda x: np.sqrt(2) * np.maximum(x, 0))
    >>> relu.regime, round(relu.xi_at_zero, 2)  # 1 / pi, to the quadrature's 1e-3 at the kink
    ('majority_vote', 0.32)
    >>> tanh = keras_norms.activations.dual_activation_stats(np.tanh)
    >>> tanh.regime, round(tanh.singular_exponent, 2)
    ('singular_kernel', 0.88)
    """
    tolerance = check_number("tolerance", tolerance, minimum=0.0)
    if isinstance(activation, HermiteActivation):
        return activation.dual_statistics(tolerance)
    if callable(activation):
        num_points = check_int("num_points", num_points, minimum=2)
        if num_points % 2:
            raise ValueError(f"`num_points` must be even. Received: num_points={num_points}")
        xi, values = _quadrature_dual(activation, num_points, derivative)
    else:
        coefficients = np.asarray(_check_coefficients(activation), dtype=np.float64)
        powers = np.arange(coefficients.size)

        def xi(rho):
            return float(np.sum(coefficients**2 * np.float64(rho) ** powers))

        squares = coefficients**2
        values = (
            float(np.sum(squares)),
            float(np.sum(powers * squares)),
            float(squares[0]),
            float(squares[1]) if squares.size > 1 else 0.0,
        )
    xi_at_one, xi_prime_at_one, xi_at_zero, xi_prime_at_zero = values
    if xi_at_one <= 0:
        raise ValueError(f"The activation is zero almost everywhere: xi(1) = {xi_at_one}")
    ratio = xi_prime_at_one / xi_at_one
    singular_exponent = None
    if xi_at_zero / xi_at_one > tolerance:
        regime = "majority_vote"
    elif ratio <= 1 + tolerance:
        regime = "linear"
    elif xi_prime_at_zero / xi_at_one <= tolerance:
        regime = "nearest_neighbor"
    else:
        regime = "singular_kernel"
        singular_exponent = 2 * math.log(xi_at_one / xi_prime_at_zero) / math.log(ratio)
    return DualActivationStats(
        xi_at_one, xi_prime_at_one, ratio, regime, xi, xi_at_zero, xi_prime_at_zero, singular_exponent
    )


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
    """`xi` and `(xi(1), xi'(1), xi(0), xi'(0))` by Gauss-Hermite quadrature."""
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

    # a_0 = E[phi(X)] and a_1 = E[X phi(X)] (= E[phi'(X)] by Stein's lemma), without derivatives.
    return xi, (
        float(np.sum(weights * phi**2)),
        float(np.sum(weights * slope**2)),
        float(np.sum(weights * phi)) ** 2,
        float(np.sum(weights * nodes * phi)) ** 2,
    )
