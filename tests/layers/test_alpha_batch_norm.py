"""AlphaBatchNormalization against a float64 oracle (docs/references/normalization.md, section 'alpha-BN').

Tolerances: outputs 1e-5 (float32 vs float64); gradients 1e-4 relative to the largest entry.
"""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.layers import AlphaBatchNormalization
from keras_norms.testing import check_layer, vjp_numpy
from tests.oracles import batch_norm as oracle
from tests.oracles.derivatives import complex_step_vjp

NAMES = ["moving_mean", "moving_variance", "gamma", "beta"]


def randomized(layer, shape, rng):
    layer.build(shape)
    channels = shape[-1]
    values = {
        "moving_mean": rng.standard_normal(channels),
        "moving_variance": rng.uniform(0.5, 2.0, channels),
        "gamma": rng.uniform(0.5, 1.5, channels),
        "beta": rng.standard_normal(channels),
    }
    for name, value in values.items():
        getattr(layer, name).assign(value.astype("float32"))
    return values


@pytest.mark.parametrize("batch_size", [1, 2, 8])
@pytest.mark.parametrize("test_weight", [0.0, 0.1, 1.0])
def test_matches_oracle_in_training_and_inference(batch_size, test_weight, rng):
    x = (rng.standard_normal((batch_size, 5, 4, 3)) * 2 + 1).astype("float32")
    layer = AlphaBatchNormalization(test_weight=test_weight, epsilon=1e-5)
    values = randomized(layer, x.shape, rng)
    expected = oracle.alpha_batch_norm(x.astype(np.float64), *[values[n] for n in NAMES], test_weight, 1e-5)
    for training in (False, True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x, training=training)), expected, atol=1e-5)
    for name in ("moving_mean", "moving_variance"):  # never updated
        np.testing.assert_allclose(keras.ops.convert_to_numpy(getattr(layer, name).value), values[name], rtol=1e-7)


def test_zero_test_weight_is_inference_batch_norm(rng):
    x = rng.standard_normal((2, 6, 3)).astype("float32")
    bn = keras.layers.BatchNormalization()
    randomized(bn, x.shape, rng)
    alpha = AlphaBatchNormalization(test_weight=0.0)
    alpha.build(x.shape)
    alpha.set_weights(bn.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(alpha(x, training=True)),
        keras.ops.convert_to_numpy(bn(x, training=False)),
        atol=1e-6,
    )


def test_masked_positions_are_left_out(rng):
    x = rng.standard_normal((3, 7, 4)).astype("float32")
    mask = rng.random((3, 7)) > 0.3
    mask[0, 0] = True
    layer = AlphaBatchNormalization(test_weight=0.4, epsilon=1e-3)
    values = randomized(layer, x.shape, rng)
    expected = oracle.alpha_batch_norm(x.astype(np.float64), *[values[n] for n in NAMES], 0.4, 1e-3, mask)
    got = keras.ops.convert_to_numpy(layer(x, mask=mask))
    np.testing.assert_allclose(got[mask], expected[mask], atol=1e-5)


def test_gradients_match_complex_step(rng):
    x = rng.standard_normal((2, 3, 3, 2)).astype("float32")
    upstream = rng.standard_normal(x.shape).astype("float32")
    layer = AlphaBatchNormalization(test_weight=0.3, epsilon=1e-5)
    values = randomized(layer, x.shape, rng)
    _, dx, (dgamma, dbeta) = vjp_numpy(layer, x, upstream)

    def f(x, gamma, beta):
        return oracle.alpha_batch_norm(x, values["moving_mean"], values["moving_variance"], gamma, beta, 0.3, 1e-5)

    expected = complex_step_vjp(f, [x.astype(np.float64), values["gamma"], values["beta"]], upstream)
    for got, want in zip((dx, dgamma, dbeta), expected):
        np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="test_weight"):
        AlphaBatchNormalization(test_weight=1.5)
    with pytest.raises(TypeError, match="synchronized"):
        AlphaBatchNormalization(synchronized="no")


def test_registered_by_name():
    assert isinstance(keras_norms.get("alpha_batch_norm"), AlphaBatchNormalization)


def test_layer_checker(tmp_path, rng):
    check_layer(
        AlphaBatchNormalization,
        {"test_weight": 0.2},
        (4, 6, 8),
        str(tmp_path),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=2,
        unchanged_by_fit=("moving_mean", "moving_variance"),
        seed=int(rng.integers(2**31)),
    )
