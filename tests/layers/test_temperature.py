"""TempNet against a float64 oracle of the reference (docs/references/layers.md, section 'TempNet').

Tolerances: tau 1e-6 absolute; gradients (input and every weight) 1e-4 relative to the largest entry.
"""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.layers import TempNet
from keras_norms.losses import TauDROCrossEntropy
from keras_norms.testing import check_layer, vjp_numpy
from tests.oracles import catalog_layers as oracle
from tests.oracles.derivatives import complex_step_vjp


def test_matches_oracle_with_gradients(rng):
    z = (rng.standard_normal((4, 9)) * 3).astype("float32")
    upstream = rng.standard_normal((4, 1)).astype("float32")
    layer = TempNet(hidden_units=5, tau_min=0.5, tau_max=5.0)
    layer.build(z.shape)
    for weight in layer.weights:  # move off the init so every path matters
        value = keras.ops.convert_to_numpy(weight.value)
        weight.assign(value + 0.2 * rng.standard_normal(value.shape).astype("float32"))
    weights = [np.asarray(keras.ops.convert_to_numpy(w.value), np.float64) for w in layer.trainable_weights]
    tau, dz, dweights = vjp_numpy(layer, z, upstream, training=False)

    def f(z, *weights):
        return oracle.tempnet(z, *weights, 0.5, 5.0)

    np.testing.assert_allclose(tau, f(z.astype(np.float64), *weights), atol=1e-6)
    expected = complex_step_vjp(f, [z.astype(np.float64), *weights], upstream)
    names = ["z"] + [w.name for w in layer.trainable_weights]
    for name, got, want in zip(names, [dz, *dweights], expected):
        np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max(), err_msg=name)


def test_initial_state_and_range(rng):
    layer = TempNet(hidden_units=8, tau_min=0.01, tau_max=1.2)
    tau = keras.ops.convert_to_numpy(layer(rng.standard_normal((50, 30)).astype("float32") * 10))
    assert tau.shape == (50, 1) and np.all((tau > 0.01) & (tau < 1.2))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.last_kernel.value), np.ones((8, 1)))
    assert float(keras.ops.convert_to_numpy(layer.log_scale.value)) == 0.0


def test_trains_with_tau_dro_cross_entropy(rng):
    logits = keras.Input((12,))
    outputs = keras.layers.Concatenate()([logits, TempNet(hidden_units=8)(logits)])
    model = keras.Model(logits, outputs)
    model.compile("adam", TauDROCrossEntropy(rho=0.1))
    history = model.fit(rng.standard_normal((32, 12)) * 4, rng.integers(0, 12, 32), epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"tau_min": 2.0, "tau_max": 1.0}, ValueError, "tau_min"),
        ({"dropout": 1.5}, ValueError, "dropout"),
        ({"hidden_units": 0}, ValueError, "hidden_units"),
        ({"normalize_input": 1}, TypeError, "normalize_input"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        TempNet(**kwargs)


def test_registered_by_name():
    assert isinstance(keras_norms.get("temp_net"), TempNet)


def test_layer_checker(tmp_path, rng):
    check_layer(
        TempNet,
        {"hidden_units": 6, "dropout": 0.0},
        (4, 6, 8),
        str(tmp_path),
        expected_num_trainable_weights=7,
        seed=int(rng.integers(2**31)),
    )
