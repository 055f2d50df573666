"""HermiteActivation, its presets and dual_activation_stats (docs/references/activations.md, 'Hermite activations').

The layer is checked against numpy's own Hermite series (`hermeval`, float64): 1e-5 relative.
The dual statistics are checked three independent ways: closed forms from the coefficients,
Gauss-Hermite quadrature of the same function (1e-9), and the arc-cosine kernel of ReLU.
The presets (the "optimal" activations of arXiv 2204.14126) are checked against the duals of the
authors' code: each preset layer, run in float64, is integrated against the Gaussian on a 2-D
quadrature grid and must give the closed-form dual (1e-6; it gives about 1e-13), and the
singular exponent of each is `d - 1`, both by its formula and by iterating the dual.
"""

import math

import keras
import numpy as np
import pytest
import scipy.special

import keras_norms
from keras_norms.activations import HermiteActivation, dual_activation_stats
from keras_norms.testing import check_layer, vjp_numpy
from tests.catalogue.test_dtypes import float64_enabled
from tests.oracles import activations as oracle

CRITICAL = [0.3, math.sqrt(1 - 2 * 0.3**2), 0.3]  # xi(1) = xi'(1) = 1 (docs/references/activations.md)
PRESETS = tuple(HermiteActivation.PRESETS)
SINE_A = {"sine_3d": 2.676, "sine_5d": 6.13539, "sine_9d": 13.8258}


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
    np.testing.assert_allclose([relu.xi_at_one, relu.xi_prime_at_one], [1.0, 1.0], rtol=1e-9)
    # Arc-cosine kernel of sqrt(2) relu; the kink limits Gauss-Hermite accuracy (about 1e-3).
    rho = 0.5
    arc_cosine = (math.sqrt(1 - rho**2) + (math.pi - math.acos(rho)) * rho) / math.pi
    np.testing.assert_allclose(relu.xi(rho), arc_cosine, atol=2e-3)
    np.testing.assert_allclose(relu.xi_at_zero, 1 / math.pi, atol=2e-3)
    # xi(0) > 0: the iterated dual converges to a positive fixed point (1 for ReLU): majority vote,
    # what the authors' code says ReLU's deep NTK reaches.
    assert relu.regime == "majority_vote" and relu.singular_exponent is None
    assert dual_activation_stats(CRITICAL).regime == "majority_vote"
    assert HermiteActivation(CRITICAL).dual_statistics().regime == "majority_vote"
    assert dual_activation_stats([0.8, 0.6]).regime == "majority_vote"  # ratio 0.36
    assert dual_activation_stats([0.0, 0.6, 0.8]).regime == "singular_kernel"
    assert dual_activation_stats([0.0, 0.0, 0.6, 0.8]).regime == "nearest_neighbor"  # xi'(0) = 0
    assert dual_activation_stats([0.0, 2.0]).regime == "linear"
    assert dual_activation_stats(np.tanh).regime == "singular_kernel"  # ratio 1.18, xi'(0) / xi(1) = 0.93


def test_singular_exponent_of_erf_matches_its_closed_form_dual():
    """erf's dual is `(2 / pi) arcsin(2 rho / 3)`; normalized, the authors' code's `erf` dual."""
    stats = dual_activation_stats(scipy.special.erf)
    assert stats.regime == "singular_kernel"
    slope_at_zero = (2 / 3) / math.asin(2 / 3)  # g'(0) of arcsin(2 rho / 3) / arcsin(2 / 3)
    slope_at_one = (2 / 3) / math.sqrt(1 - 4 / 9) / math.asin(2 / 3)
    expected = 2 * math.log(1 / slope_at_zero) / math.log(slope_at_one)  # 0.888
    np.testing.assert_allclose(stats.singular_exponent, expected, rtol=1e-6)
    np.testing.assert_allclose(stats.xi(0.4) / stats.xi_at_one, math.asin(0.8 / 3) / math.asin(2 / 3), rtol=1e-9)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_dual_by_quadrature_is_the_closed_form(name):
    """The float64 layer itself, integrated against the Gaussian: independent of its coefficients."""
    dual = HermiteActivation.PRESETS[name].dual
    rhos = np.linspace(-1.0, 1.0, 41)
    with float64_enabled():
        layer = HermiteActivation.preset(name, dtype="float64")

        def phi(x):
            return keras.ops.convert_to_numpy(layer(x))

        computed = np.array([oracle.gaussian_dual(phi, rho) for rho in rhos])
    np.testing.assert_allclose(computed, dual(rhos), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_forward_matches_the_float64_oracle(name, rng):
    coefficients = HermiteActivation.PRESETS[name].coefficients
    x = np.concatenate([np.linspace(-3, 3, 61), np.clip(rng.standard_normal(64), -3, 3)]).reshape(5, 25)
    expected = oracle.hermite_series(x, coefficients)
    scale = np.abs(expected).max() + 1
    float32 = keras.ops.convert_to_numpy(HermiteActivation.preset(name)(x.astype("float32")))
    np.testing.assert_allclose(float32, expected, rtol=0, atol=1e-6 * scale)
    with float64_enabled():
        float64 = keras.ops.convert_to_numpy(HermiteActivation.preset(name, dtype="float64")(x))
    np.testing.assert_allclose(float64, expected, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("name", sorted(SINE_A))
def test_sine_presets_are_the_sine_activation(name):
    """With alternating signs the truncated series is `sqrt(e**a / sinh a) sin(sqrt(a) x)` on [-3, 3]."""
    x = np.linspace(-3, 3, 121)
    series = oracle.hermite_series(x, HermiteActivation.PRESETS[name].coefficients)
    np.testing.assert_allclose(series, oracle.sine_activation(x, SINE_A[name]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", PRESETS)
def test_singular_exponent_is_the_dimension_of_the_sphere(name):
    preset = HermiteActivation.PRESETS[name]
    closed_form = 2 * math.log(1 / preset.dual_derivative(0.0)) / math.log(preset.dual_derivative(1.0))
    # Exact for the polynomials; within 3e-5 for the sines, whose `a` the authors' code gives to 4 to 6 digits.
    np.testing.assert_allclose(closed_form, preset.dimension - 1, rtol=3e-5 if name in SINE_A else 1e-12)
    exact = dual_activation_stats(list(preset.coefficients))  # the truncated series, float64
    assert exact.regime == "singular_kernel"
    np.testing.assert_allclose(exact.singular_exponent, closed_form, rtol=1e-10)
    layer = HermiteActivation.preset(name).dual_statistics()  # from the float32 weights
    assert layer.regime == "singular_kernel"
    np.testing.assert_allclose(layer.singular_exponent, closed_form, rtol=1e-6)


@pytest.mark.parametrize("name", PRESETS)
def test_singular_exponent_is_the_power_of_the_infinitely_deep_kernel(name):
    """`c(rho) = lim_L g^L(rho) / g'(0)**L` grows like `(1 - rho)**(-alpha / 2) = ||x - z||**-alpha * const`."""
    preset = HermiteActivation.PRESETS[name]
    gap = np.logspace(-3, -12, 91)  # 1 - rho
    iterate, depth = 1.0 - gap, 0
    while np.abs(iterate).max() > 1e-9:
        iterate, depth = preset.dual(iterate), depth + 1
    kernel = iterate / preset.dual_derivative(0.0) ** depth
    slope = np.polyfit(np.log(gap), np.log(kernel), 1)[0]
    np.testing.assert_allclose(-2 * slope, preset.dimension - 1, rtol=2e-3)


def test_from_dual_takes_square_roots():
    layer = HermiteActivation.from_dual([0.25, 0.0, 0.49], trainable_coefficients=True)
    np.testing.assert_allclose(layer.coefficients, [0.5, 0.0, 0.7])
    assert layer.trainable_coefficients
    assert HermiteActivation.from_dual([0.0, 0.5, 0.0, 0.5]).coefficients == list(
        HermiteActivation.PRESETS["optimal_3d"].coefficients
    )


def test_preset_round_trips_through_a_keras_file(tmp_path):
    model = keras.Sequential([keras.Input((6,)), HermiteActivation.preset("sine_5d")])
    x = np.linspace(-2, 2, 24).reshape(4, 6).astype("float32")
    path = str(tmp_path / "preset.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    (layer,) = loaded.layers
    assert isinstance(layer, HermiteActivation)
    assert layer.coefficients == list(HermiteActivation.PRESETS["sine_5d"].coefficients)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: HermiteActivation([]), ValueError, "coefficients"),
        (lambda: HermiteActivation([1.0, "a"]), TypeError, r"coefficients\[1\]"),
        (lambda: dual_activation_stats(np.tanh, num_points=201), ValueError, "num_points"),
        (lambda: dual_activation_stats(lambda x: x.astype("float32")), TypeError, "float64"),
        (lambda: dual_activation_stats([0.0, 0.0]), ValueError, "xi"),
        (lambda: HermiteActivation.from_dual([0.5, 0.1, -0.25]), ValueError, r"coefficients\[2\]=-0.25"),
        (lambda: HermiteActivation.from_dual([0.5, math.nan]), ValueError, r"coefficients\[1\]=nan"),
        (lambda: HermiteActivation.preset("optimal_4d"), ValueError, "optimal_2d, optimal_3d, .*sine_9d"),
        (lambda: HermiteActivation.preset(None), ValueError, "name=None"),
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
