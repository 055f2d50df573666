"""HermiteActivation and dual_activation_stats (docs/references/activations.md, 'Hermite activations').

The layer is checked against numpy's own Hermite series (`hermeval`, float64): 1e-5 relative.
The dual statistics are checked three independent ways: closed forms from the coefficients,
Gauss-Hermite quadrature of the same function (1e-9), and the arc-cosine kernel of ReLU.
"""

import math

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.activations import HermiteActivation, dual_activation_stats
from keras_norms.testing import check_layer, vjp_numpy
from tests.oracles import activations as oracle

CRITICAL = [0.3, math.sqrt(1 - 2 * 0.3**2), 0.3]  # xi(1) = xi'(1) = 1 (docs/references/activations.md)


@pytest.mark.parametrize("degree", [0, 1, 4, 9])
def test_matches_numpy_hermite_series(degree, rng):
    coefficients = (rng.standard_normal(degree + 1) / np.sqrt(np.arange(1, degree + 2))).tolist()
    x = np.clip(rng.standard_normal((3, 4, 5)) * 1.5, -4, 4).astype("float32")
    layer = HermiteActivation(coefficients)
    expected = oracle.hermite_series(x.astype(np.float64), coefficients)
    scale = np.abs(expected).max() + 1
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, atol=1e-6 * scale)


def test_trainable_coefficients_gradient(rng):
    coefficients = rng.standard_normal(5).tolist()
    x = rng.standard_normal((6, 3)).astype("float32")
    upstream = rng.standard_normal(x.shape).astype("float32")
    layer = HermiteActivation(coefficients, trainable_coefficients=True)
    _, dx, (dcoefficients,) = vjp_numpy(layer, x, upstream)
    x64 = x.astype(np.float64)
    basis = [oracle.hermite_series(x64, np.eye(5)[i]) for i in range(5)]
    expected = [np.sum(upstream * b) for b in basis]
    np.testing.assert_allclose(dcoefficients, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    derivative = np.polynomial.hermite_e.hermeder(
        [a / math.sqrt(math.factorial(i)) for i, a in enumerate(coefficients)]
    )
    expected_dx = upstream * np.polynomial.hermite_e.hermeval(x64, derivative)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-5, atol=1e-5 * np.abs(expected_dx).max())


def test_dual_statistics_from_coefficients_are_closed_forms(rng):
    coefficients = rng.standard_normal(6)
    stats = dual_activation_stats(coefficients.tolist())
    powers = np.arange(6)
    np.testing.assert_allclose(stats.xi_at_one, np.sum(coefficients**2), rtol=1e-14)
    np.testing.assert_allclose(stats.xi_prime_at_one, np.sum(powers * coefficients**2), rtol=1e-14)
    np.testing.assert_allclose(stats.xi(0.4), np.sum(coefficients**2 * 0.4**powers), rtol=1e-14)


def test_quadrature_agrees_with_the_closed_forms(rng):
    coefficients = rng.standard_normal(5).tolist()
    exact = dual_activation_stats(coefficients)
    quadrature = dual_activation_stats(lambda x: oracle.hermite_series(x, coefficients))
    for field in ("xi_at_one", "xi_prime_at_one", "ratio"):
        np.testing.assert_allclose(getattr(quadrature, field), getattr(exact, field), rtol=1e-9)
    for rho in (-0.7, 0.0, 0.35, 0.9):
        np.testing.assert_allclose(quadrature.xi(rho), exact.xi(rho), rtol=1e-9, atol=1e-12)


def test_regimes():
    relu = dual_activation_stats(lambda x: np.sqrt(2) * np.maximum(x, 0))
    assert relu.regime == "singular_kernel"
    np.testing.assert_allclose([relu.xi_at_one, relu.xi_prime_at_one], [1.0, 1.0], rtol=1e-9)
    # Arc-cosine kernel of sqrt(2) relu; the kink limits Gauss-Hermite accuracy (about 1e-3).
    rho = 0.5
    arc_cosine = (math.sqrt(1 - rho**2) + (math.pi - math.acos(rho)) * rho) / math.pi
    np.testing.assert_allclose(relu.xi(rho), arc_cosine, atol=2e-3)
    assert dual_activation_stats(CRITICAL).regime == "singular_kernel"
    assert HermiteActivation(CRITICAL).dual_statistics().regime == "singular_kernel"
    assert dual_activation_stats(np.tanh).regime == "nearest_neighbor"  # ratio 1.18
    assert dual_activation_stats([0.8, 0.6]).regime == "majority_vote"  # ratio 0.36


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: HermiteActivation([]), ValueError, "coefficients"),
        (lambda: HermiteActivation([1.0, "a"]), TypeError, r"coefficients\[1\]"),
        (lambda: dual_activation_stats(np.tanh, num_points=201), ValueError, "num_points"),
        (lambda: dual_activation_stats(lambda x: x.astype("float32")), TypeError, "float64"),
        (lambda: dual_activation_stats([0.0, 0.0]), ValueError, "xi"),
    ],
)
def test_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_registered_by_name():
    assert isinstance(keras_norms.get("hermite_activation", coefficients=CRITICAL), HermiteActivation)


def test_layer_checker(tmp_path, rng):
    check_layer(
        HermiteActivation,
        {"coefficients": CRITICAL, "trainable_coefficients": True},
        (4, 6, 8),
        str(tmp_path),
        expected_num_trainable_weights=1,
        seed=int(rng.integers(2**31)),
    )
