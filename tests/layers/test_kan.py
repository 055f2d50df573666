"""AFKANDense against a float64 oracle of the reference's global_attn path (docs/references/layers.md, 'AF-KAN').

Tolerances: outputs 1e-5 relative to the largest entry; gradients 1e-4 relative to the largest entry.
"""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.layers import AFKANDense
from keras_norms.testing import check_layer, vjp_numpy
from tests.oracles import catalog_layers as oracle
from tests.oracles.derivatives import complex_step_vjp

NAMES = ["phase_low", "phase_high", "score_kernel", "score_bias", "temperature", "gamma", "beta", "kernel"]


def randomized(layer, dim, rng, temperature=None):
    layer.build((None, dim))
    values = {}
    for weight in layer.weights:
        value = keras.ops.convert_to_numpy(weight.value).astype(np.float64)
        if weight.name in ("gamma", "beta"):  # randomize the LayerNorm affine, as the recipe says
            value = value + 0.3 * rng.standard_normal(value.shape)
        if weight.name == "temperature" and temperature is not None:
            value = np.float64(temperature)
        weight.assign(value.astype("float32"))
        values[weight.name] = value
    return values


def oracle_call(x, values, **kwargs):
    return oracle.afkan(
        x, *[values[n] for n in NAMES[:5]], values["kernel"], values.get("gamma"), values.get("beta"), **kwargs
    )


@pytest.mark.parametrize("func", list(oracle.FUNCTIONS))
@pytest.mark.parametrize("func_norm", ["none", "global", "per_sample"])
def test_matches_oracle(func, func_norm, rng):
    # 16 input features: with 5, cubic2 under the global min-max feeds LayerNorm nearly constant
    # vectors in ~2% of draws, and even the float32 numpy oracle is then 1e-5..8e-5 off float64.
    x = rng.standard_normal((6, 16)).astype("float32")
    layer = AFKANDense(3, func=func, func_norm=func_norm)
    values = randomized(layer, 16, rng)
    expected = oracle_call(x.astype(np.float64), values, func=func, func_norm=func_norm)
    got = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("temperature", [2.5, 0.6])  # 0.6 acts as 1 with zero gradient
def test_gradients_match_complex_step(temperature, rng):
    x = rng.standard_normal((4, 5)).astype("float32")
    upstream = rng.standard_normal((4, 3)).astype("float32")
    layer = AFKANDense(3, func="quad2")
    values = randomized(layer, 5, rng, temperature)
    outputs, dx, dweights = vjp_numpy(layer, x, upstream)
    names = [w.name for w in layer.trainable_weights]

    def f(x, *weights):
        return oracle_call(x, dict(zip(names, weights)), func="quad2")

    expected = complex_step_vjp(f, [x.astype(np.float64)] + [values[n] for n in names], upstream)
    for name, got, want in zip(["x"] + names, [dx] + dweights, expected):
        # Exactly-zero gradients (the score bias: softmax ignores shifts) get 1e-6 absolute.
        np.testing.assert_allclose(got, want, atol=1e-4 * max(np.abs(want).max(), 1e-2), err_msg=name)


def test_global_func_norm_is_batch_dependent_and_per_sample_is_not(rng):
    # A sample that holds both extremes of the batch is unaffected by the others, so "global"
    # is checked on several batches; "per_sample" and "none" must be independent on all.
    batches = [rng.standard_normal((8, 5)).astype("float32") for _ in range(5)]
    for func_norm, dependent in (("global", True), ("per_sample", False), ("none", False)):
        layer = AFKANDense(3, func_norm=func_norm)
        differences = [
            np.abs(keras.ops.convert_to_numpy(layer(x[:1])) - keras.ops.convert_to_numpy(layer(x))[:1]).max()
            for x in batches
        ]
        if dependent:
            assert max(differences) > 1e-5, func_norm
        else:
            assert max(differences) < 1e-6, func_norm


def test_counts_only_the_weights_it_uses():
    layer = AFKANDense(3, grid_size=3, spline_order=3)
    layer.build((None, 5))
    # phases 2 x 6, scores 6 + 1, temperature 1, LayerNorm 2 x 5, kernel 5 x 3
    assert layer.count_params() == 12 + 7 + 1 + 10 + 15


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"func": "quad3"}, "func"),
        ({"func_norm": True}, "func_norm"),
        ({"norm": "group"}, "norm"),
        ({"base_activation": "swish"}, "base_activation"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AFKANDense(3, **kwargs)


def test_registered_by_name():
    assert isinstance(keras_norms.get("afkan_dense", units=4), AFKANDense)


@pytest.mark.parametrize(
    "kwargs, trainable, non_trainable",
    [({"units": 5}, 8, 0), ({"units": 5, "norm": "batch", "func_norm": "per_sample"}, 8, 2)],
)
def test_layer_checker(kwargs, trainable, non_trainable, tmp_path, rng):
    check_layer(
        AFKANDense,
        kwargs,
        (4, 6, 8),
        str(tmp_path),
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=non_trainable,
        supports_masking=kwargs.get("norm") != "batch",
        unchanged_by_fit=("score_bias",),  # softmax ignores a shift: zero gradient, as in the reference
        seed=int(rng.integers(2**31)),
    )
