"""CRReLU against a float64 oracle and the reference values of docs/references/activations.md, plus the shared checker.

Tolerances: values 1e-6 (float32 vs float64), gradients 1e-5 relative to the largest entry (for
the scalar epsilon, a sum: 1e-5 of the sum of the magnitudes of its terms).
"""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.activations import CRReLU, crrelu
from keras_norms.testing import check_layer, vjp_numpy


def oracle(x, epsilon):
    return np.maximum(x, 0) + epsilon * x * np.exp(-(x**2) / 2)


def to_numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype=np.float64)


def test_reference_values_with_default_epsilon():
    # docs/references/activations.md, section 'CRReLU', epsilon = 0.01.
    x = np.array([-1.0, 0.5, 1.0, 2.0], "float32")
    expected = [-0.00606531, 0.50441248, 1.00606531, 2.00270671]
    np.testing.assert_allclose(to_numpy(crrelu(x)), expected, rtol=0, atol=1e-7)
    np.testing.assert_allclose(to_numpy(CRReLU()(x)), expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("epsilon", [0.01, -0.3, 1.7])
def test_function_and_layer_match_oracle(epsilon, rng):
    x = (rng.standard_normal((3, 5, 7)) * 2).astype("float32")
    expected = oracle(x.astype(np.float64), epsilon)
    np.testing.assert_allclose(to_numpy(crrelu(x, epsilon=epsilon)), expected, rtol=1e-6, atol=1e-6)
    layer = CRReLU(epsilon_initializer=keras.initializers.Constant(epsilon))
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-6, atol=1e-6)


def test_gradients_match_analytic_derivatives(rng):
    x = (rng.standard_normal((4, 9)) * 2).astype("float32")
    upstream = rng.standard_normal(x.shape).astype("float32")
    epsilon = 0.37
    layer = CRReLU(epsilon_initializer=keras.initializers.Constant(epsilon))
    _, dx, (depsilon,) = vjp_numpy(layer, x, upstream)
    x64 = x.astype(np.float64)
    gaussian = np.exp(-(x64**2) / 2)
    expected_dx = upstream * ((x64 > 0) + epsilon * (1 - x64**2) * gaussian)
    expected_depsilon = np.sum(upstream * x64 * gaussian)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-5, atol=1e-5 * np.abs(expected_dx).max())
    # A sum of terms of both signs: the float32 error scales with the sum of their magnitudes.
    terms_scale = np.sum(np.abs(upstream * x64 * gaussian))
    np.testing.assert_allclose(depsilon, expected_depsilon, rtol=1e-5, atol=1e-5 * terms_scale)


def test_fixed_epsilon_is_not_trained():
    layer = CRReLU(epsilon_trainable=False)
    assert (len(layer.trainable_weights), len(layer.non_trainable_weights)) == (0, 1)


def test_function_serializes_as_a_dense_activation():
    dense = keras.layers.Dense(3, activation=crrelu)
    revived = keras.layers.Dense.from_config(dense.get_config())
    assert revived.activation is crrelu


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: CRReLU(epsilon_trainable="yes"), TypeError, "epsilon_trainable"),
        (lambda: crrelu(np.ones(2, "float32"), epsilon="0.1"), TypeError, "epsilon"),
    ],
)
def test_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_registered_by_name():
    assert isinstance(keras_norms.get("crrelu"), CRReLU)


def test_layer_checker(tmp_path, rng):
    check_layer(
        CRReLU,
        {"epsilon_initializer": keras.initializers.Constant(0.05)},
        (4, 6, 8),
        str(tmp_path),
        expected_num_trainable_weights=1,
        jit_compile_true=True,
        seed=int(rng.integers(2**31)),
    )
