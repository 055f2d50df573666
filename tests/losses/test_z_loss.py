"""ZLoss against a float64 oracle and the reference values of docs/references/losses.md, section 'Z-loss'.

Tolerances: values 1e-6 absolute + relative (float32 vs float64); gradients 1e-5 relative to the
largest entry.
"""

import keras
import numpy as np
import pytest

from keras_norms.losses import ZLoss
from keras_norms.testing import check_serialization, gradient_numpy
from tests.oracles import losses as oracle
from tests.oracles.derivatives import complex_step_vjp


@pytest.mark.parametrize(
    "logits, label, a, b, expected",
    [
        ([1, 2, 3, 4], 2, 1.0, 1.0, 1.00726034),
        ([1, 2, 3, 4], 2, 0.1, 10.0, 12.80765714),
        ([0.5, -1, 2, 0], 0, 1.0, 1.0, 1.23018009),
        ([0.5, -1, 2, 0], 0, 0.1, 10.0, 13.04833281),
    ],
)
def test_reference_values(logits, label, a, b, expected):
    value = ZLoss(a=a, b=b)(np.array([label]), np.array([logits], "float32"))
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(value)), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("a, b", [(1.0, 1.0), (0.3, 4.0), (5.0, -0.5)])
def test_values_and_gradients_match_oracle(a, b, rng):
    logits = (rng.standard_normal((6, 11)) * 3).astype("float32")
    labels = rng.integers(0, 11, 6)
    loss = ZLoss(a=a, b=b, epsilon=1e-7)

    def mean_loss(x):
        return loss(labels, x)

    value, (gradient,) = gradient_numpy(mean_loss, logits)
    x64 = logits.astype(np.float64)
    expected = oracle.z_loss(labels, x64, a, b, 1e-7)
    np.testing.assert_allclose(value, expected.mean(), rtol=1e-6, atol=1e-6)
    (expected_gradient,) = complex_step_vjp(lambda x: oracle.z_loss(labels, x, a, b, 1e-7), [x64], np.full(6, 1 / 6))
    scale = np.abs(expected_gradient).max()
    np.testing.assert_allclose(gradient, expected_gradient, atol=1e-5 * scale)


def test_invariant_to_shift_and_scale(rng):
    logits = rng.standard_normal((4, 7)).astype("float32")
    labels = rng.integers(0, 7, 4)
    loss = ZLoss(a=2.0, b=0.5, reduction=None)
    base = keras.ops.convert_to_numpy(loss(labels, logits))
    moved = keras.ops.convert_to_numpy(loss(labels, 3.7 * logits - 11.0))
    np.testing.assert_allclose(moved, base, rtol=1e-5, atol=1e-6)


def test_equal_logits_give_a_finite_loss_and_gradient():
    logits = np.full((2, 5), 3.0, "float32")
    value, (gradient,) = gradient_numpy(lambda x: ZLoss()(np.array([0, 4]), x), logits)
    np.testing.assert_allclose(value, np.log1p(np.e), rtol=1e-6, atol=1e-6)  # z = 0: softplus(1)
    assert np.all(np.isfinite(gradient))


def test_per_token_loss_honours_keras_masks(rng):
    logits = rng.standard_normal((2, 3, 5)).astype("float32")
    labels = rng.integers(0, 5, (2, 3))
    per_token = oracle.z_loss(labels, logits.astype(np.float64), 1.0, 1.0, 1e-7)
    weights = np.array([[1, 1, 0], [1, 0, 0]], "float32")
    value = ZLoss()(labels, logits, sample_weight=weights)
    np.testing.assert_allclose(
        float(keras.ops.convert_to_numpy(value)), np.sum(per_token * weights) / 6, rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [({"a": 0.0}, ValueError, "`a`"), ({"b": "1"}, TypeError, "`b`"), ({"epsilon": -1.0}, ValueError, "epsilon")],
)
def test_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        ZLoss(**kwargs)


def test_serialization_and_fit(rng):
    loss = check_serialization(ZLoss(a=0.5, b=2.0))
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(5)])
    model.compile("sgd", loss)
    history = model.fit(rng.standard_normal((16, 8)), rng.integers(0, 5, 16), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
