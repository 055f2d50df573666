"""LogMeanLoss: Normalized LR+GD (docs/references/losses.md, section 'Normalized LR+GD') against float64 numpy.

Tolerances: values 1e-6 absolute + relative (log f is often near 0); a 5-step SGD trajectory on it matches the explicit
`w -= gamma * grad f / f` loop to 1e-4 relative (float32 against float64 over several steps).
"""

import keras
import numpy as np
import pytest

from keras_norms.losses import LogMeanLoss
from keras_norms.testing import check_serialization
from tests.oracles import losses as oracle


def test_value_matches_oracle(rng):
    logits = (rng.standard_normal(32) * 3).astype("float32")
    labels = rng.integers(0, 2, 32).astype("float32")
    value = LogMeanLoss()(labels, logits)
    expected = oracle.log_mean_logistic(labels.astype(np.float64), logits.astype(np.float64))
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(value)), expected, rtol=1e-6, atol=1e-6)


def test_no_underflow_at_large_margins(rng):
    # Mean loss about exp(-120): zero in float32; its log is still exact.
    labels = rng.integers(0, 2, 16).astype("float32")
    margins = rng.uniform(120, 200, 16)
    logits = ((2 * labels - 1) * margins).astype("float32")
    value = float(keras.ops.convert_to_numpy(LogMeanLoss()(labels, logits)))
    expected = oracle.log_mean_logistic(labels.astype(np.float64), logits.astype(np.float64))
    np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_sgd_on_it_is_normalized_gradient_descent(rng):
    n, d, gamma, steps = 40, 3, 5.0, 5
    x = rng.standard_normal((n, d))
    labels = (x @ np.array([1.0, -2.0, 0.5]) > 0).astype(np.float64)
    w0 = rng.standard_normal((d, 1)) * 0.1
    model = keras.Sequential([keras.Input((d,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].kernel.assign(w0.astype("float32"))
    model.compile(keras.optimizers.SGD(gamma), LogMeanLoss())
    model.fit(x.astype("float32"), labels.astype("float32"), batch_size=n, epochs=steps, verbose=0, shuffle=False)
    w = w0[:, 0].copy()
    signs = 2 * labels - 1
    for _ in range(steps):
        margins = signs * (x @ w)
        losses = np.log1p(np.exp(-margins))
        gradient = -(x * (signs / (1 + np.exp(margins)))[:, None]).mean(0)
        w -= gamma * gradient / losses.mean()
    trained = keras.ops.convert_to_numpy(model.layers[0].kernel.value)[:, 0]
    np.testing.assert_allclose(trained, w, rtol=1e-4, atol=1e-4 * np.abs(w).max())


def test_wraps_any_keras_loss(rng):
    y = rng.standard_normal((8, 3)).astype("float32")
    p = rng.standard_normal((8, 3)).astype("float32")
    value = LogMeanLoss(base=keras.losses.MeanSquaredError())(y, p)
    expected = np.log(np.mean((y.astype(np.float64) - p) ** 2))
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(value)), expected, rtol=1e-6, atol=1e-6)
    check_serialization(LogMeanLoss(base=keras.losses.MeanSquaredError()))


def test_sample_weight_and_bad_base_raise():
    with pytest.raises(ValueError, match="sample_weight"):
        LogMeanLoss()(np.ones(4), np.ones(4), sample_weight=np.ones(4))
    with pytest.raises(TypeError, match="base"):
        LogMeanLoss(base="hinge")


def test_serialization():
    check_serialization(LogMeanLoss())
