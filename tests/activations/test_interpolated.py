"""InterpolatedActivation against a float64 oracle (docs/references/activations.md, section 'Interpolated activation').

Tolerances: values 1e-6 (float32 vs float64); gradients 1e-5 relative to the largest entry.
"""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.activations import InterpolatedActivation, crrelu
from keras_norms.testing import check_layer, vjp_numpy
from tests.oracles import activations as oracle

NUMPY_ACTIVATIONS = {
    "relu": oracle.relu,
    "linear": lambda x: x,
    "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
}


@pytest.mark.parametrize("fn_a, fn_b", [("relu", "linear"), ("tanh", "sigmoid")])
@pytest.mark.parametrize("alpha", [0.0, 0.37, 1.0])
def test_fixed_alpha_matches_oracle(fn_a, fn_b, alpha, rng):
    x = (rng.standard_normal((4, 6, 5)) * 2).astype("float32")
    layer = InterpolatedActivation(fn_a, fn_b, alpha=alpha)
    expected = oracle.interpolated(x.astype(np.float64), NUMPY_ACTIVATIONS[fn_a], NUMPY_ACTIVATIONS[fn_b], alpha)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, rtol=1e-6, atol=1e-6)
    assert not layer.weights


def test_trainable_alpha_gradient_is_the_difference_of_the_two(rng):
    x = (rng.standard_normal((5, 7)) * 2).astype("float32")
    upstream = rng.standard_normal(x.shape).astype("float32")
    alpha = 0.3
    layer = InterpolatedActivation("tanh", "relu", alpha=alpha, trainable_alpha=True)
    outputs, dx, (dlogit,) = vjp_numpy(layer, x, upstream)
    x64 = x.astype(np.float64)
    expected = oracle.interpolated(x64, np.tanh, oracle.relu, alpha)
    np.testing.assert_allclose(outputs, expected, rtol=1e-6, atol=1e-6)
    # d/dlogit = sum(upstream * (tanh - relu)) * alpha * (1 - alpha)
    expected_dlogit = np.sum(upstream * (np.tanh(x64) - oracle.relu(x64))) * alpha * (1 - alpha)
    # A sum of terms of both signs: the float32 error scales with the sum of their magnitudes.
    terms_scale = np.sum(np.abs(upstream * (np.tanh(x64) - oracle.relu(x64)))) * alpha * (1 - alpha)
    np.testing.assert_allclose(dlogit, expected_dlogit, rtol=1e-5, atol=1e-5 * terms_scale)
    expected_dx = upstream * (alpha * (1 - np.tanh(x64) ** 2) + (1 - alpha) * (x64 > 0))
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-5, atol=1e-5 * np.abs(expected_dx).max())


def test_takes_registered_callables_and_round_trips():
    layer = InterpolatedActivation(crrelu, "gelu", alpha=0.25)
    revived = InterpolatedActivation.from_config(layer.get_config())
    assert revived.fn_a is crrelu and revived.alpha == 0.25


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"alpha": 1.5}, ValueError, "alpha"),
        ({"alpha": 0.0, "trainable_alpha": True}, ValueError, r"\(0, 1\)"),
        ({"fn_a": "no_such_activation"}, ValueError, "fn_a"),
        ({"fn_b": 3}, TypeError, "fn_b"),
        ({"trainable_alpha": 1}, TypeError, "trainable_alpha"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        InterpolatedActivation(**kwargs)


def test_registered_by_name():
    assert isinstance(keras_norms.get("interpolated_activation"), InterpolatedActivation)


def test_layer_checker(tmp_path, rng):
    check_layer(
        InterpolatedActivation,
        {"fn_a": "relu", "fn_b": "tanh", "alpha": 0.4, "trainable_alpha": True},
        (4, 6, 8),
        str(tmp_path),
        expected_num_trainable_weights=1,
        seed=int(rng.integers(2**31)),
    )
