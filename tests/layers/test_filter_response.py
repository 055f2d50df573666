"""FilterResponseNormalization and TLU against float64 oracles, plus the shared layer checker.

Tolerances (float32 layer vs float64 oracle): outputs 1e-5 absolute and relative; gradients 1e-4
relative to the largest gradient entry (complex-step oracle gradients).
"""

import keras
import numpy as np
import pytest

from keras_norms import layers
from keras_norms.testing import check_layer, vjp_numpy
from tests.oracles.derivatives import complex_step_vjp
from tests.oracles.filter_response import filter_response_norm, tlu

OUTPUT_TOLERANCE = 1e-5
GRADIENT_TOLERANCE = 1e-4

# name -> (constructor arguments, input shape)
CASES = {
    "2d": ({}, (3, 4, 5, 6)),
    "2d_channels_first": ({"axis": 1}, (3, 6, 4, 5)),
    "1d_learned_epsilon": ({"learned_epsilon": True, "epsilon": 1e-3}, (3, 7, 6)),
    "3d_no_tlu": ({"apply_act": False}, (2, 3, 3, 4, 6)),
    "1x1_learned_epsilon": ({"learned_epsilon": True}, (4, 1, 1, 6)),
    "no_affine": ({"center": False, "scale": False}, (3, 4, 5, 6)),
}


def to_numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype=np.float64)


def make_layer(case, rng):
    kwargs, shape = CASES[case]
    layer = layers.FilterResponseNormalization(**kwargs)
    layer.build(shape)
    weights = {}
    for w in layer.weights:
        low, high = {"gamma": (0.5, 1.5), "learned_epsilon": (-0.05, 0.05)}.get(w.name, (-0.5, 0.5))
        weights[w.name] = rng.uniform(low, high, w.shape)
        w.assign(weights[w.name].astype("float32"))
    return layer, weights, shape


def oracle(layer, weights, x, mask=None):
    return filter_response_norm(
        x,
        weights.get("gamma"),
        weights.get("beta"),
        weights.get("tau"),
        layer.epsilon,
        channel_axis=layer.axis,
        mask=mask,
        learned_epsilon=weights.get("learned_epsilon"),
    )


def random_input(rng, shape):
    return (rng.standard_normal(shape) * 2.0 + rng.standard_normal()).astype("float32")


@pytest.mark.parametrize("case", list(CASES))
def test_matches_oracle(case, rng):
    layer, weights, shape = make_layer(case, rng)
    x = random_input(rng, shape)
    channel_axis = layer.axis % len(shape)
    mask_shape = shape[:channel_axis] + shape[channel_axis + 1 :]
    mask = rng.random(mask_shape) > 0.3
    for m in (None, mask):
        expected = oracle(layer, weights, x.astype(np.float64), m)
        for training in (True, False):  # the same either way: no batch statistics
            got = to_numpy(layer(x, training=training, mask=m))
            np.testing.assert_allclose(got, expected, rtol=OUTPUT_TOLERANCE, atol=OUTPUT_TOLERANCE)


@pytest.mark.parametrize("case", list(CASES))
def test_gradients_match_oracle(case, rng):
    layer, weights, shape = make_layer(case, rng)
    x = random_input(rng, shape)
    upstream = rng.standard_normal(shape).astype("float32")
    names = [w.name for w in layer.trainable_weights]

    def function(x, *trainable):
        return oracle(layer, {**weights, **dict(zip(names, trainable))}, x)

    expected = complex_step_vjp(function, [x.astype(np.float64)] + [weights[n] for n in names], upstream)
    _, dx, dweights = vjp_numpy(layer, x, upstream)
    for name, got, want in zip(["inputs"] + names, [dx] + dweights, expected):
        np.testing.assert_allclose(
            got,
            want,
            rtol=GRADIENT_TOLERANCE,
            atol=GRADIENT_TOLERANCE * np.abs(want).max(),
            err_msg=f"gradient with respect to {name}",
        )


@pytest.mark.parametrize("affine", [False, True])
def test_tlu_matches_oracle_with_gradients(affine, rng):
    shape = (3, 4, 6)
    layer = layers.TLU(affine=affine)
    layer.build(shape)
    weights = [rng.uniform(-0.5, 0.5, 6) for _ in layer.weights]  # tau[, alpha]
    for w, value in zip(layer.weights, weights):
        w.assign(value.astype("float32"))
    x = random_input(rng, shape)
    upstream = rng.standard_normal(shape).astype("float32")

    def function(x, tau, alpha=None):
        return tlu(x, tau, -1, alpha)

    np.testing.assert_allclose(
        to_numpy(layer(x)), function(x.astype(np.float64), *weights), rtol=OUTPUT_TOLERANCE, atol=OUTPUT_TOLERANCE
    )
    expected = complex_step_vjp(function, [x.astype(np.float64)] + weights, upstream)
    _, dx, dweights = vjp_numpy(layer, x, upstream)
    for got, want in zip([dx] + dweights, expected):
        np.testing.assert_allclose(got, want, rtol=GRADIENT_TOLERANCE, atol=GRADIENT_TOLERANCE)


def test_frn_without_tlu_equals_tensorflow_addons_formula_then_tlu(rng):
    """`apply_act=False` is tensorflow-addons' FRN; followed by `TLU` it is the fused layer."""
    x = random_input(rng, (2, 4, 4, 6))
    fused = layers.FilterResponseNormalization()
    plain = layers.FilterResponseNormalization(apply_act=False)
    threshold = layers.TLU()
    for layer in (fused, plain, threshold):
        layer.build(x.shape)
    tau = rng.uniform(-0.5, 0.5, 6).astype("float32")
    fused.tau.assign(tau)
    threshold.tau.assign(tau)
    np.testing.assert_allclose(to_numpy(fused(x)), to_numpy(threshold(plain(x))), rtol=1e-6, atol=1e-6)


def test_mixed_precision_statistics_do_not_overflow():
    # mean(x**2) = 9e4 overflows float16; float32 statistics keep the output at gamma * 1 + beta = 1.
    x = np.full((2, 3, 3, 4), 300.0, "float32")
    y = to_numpy(layers.FilterResponseNormalization(dtype="mixed_float16")(keras.ops.cast(x, "float16")))
    np.testing.assert_allclose(y, np.ones_like(x), rtol=1e-2)


@pytest.mark.parametrize(
    "cls, kwargs, shape, error, match",
    [
        (layers.FilterResponseNormalization, {"epsilon": -1e-6}, None, ValueError, "epsilon"),
        (layers.FilterResponseNormalization, {"learned_epsilon": "yes"}, None, TypeError, "learned_epsilon"),
        (layers.FilterResponseNormalization, {"axis": 1.5}, None, TypeError, "axis"),
        (layers.FilterResponseNormalization, {}, (4, 6), ValueError, "rank 3 to 5"),
        (layers.TLU, {"affine": 1}, None, TypeError, "affine"),
    ],
)
def test_bad_arguments_raise(cls, kwargs, shape, error, match):
    with pytest.raises(error, match=match):
        layer = cls(**kwargs)
        layer.build(shape)


@pytest.mark.parametrize(
    "cls, kwargs, shape, trainable, jit",
    [
        (layers.FilterResponseNormalization, {}, (4, 5, 6, 8), 3, True),
        (layers.FilterResponseNormalization, {"axis": 1, "learned_epsilon": True}, (4, 8, 5, 6), 4, False),
        (layers.FilterResponseNormalization, {"apply_act": False}, (4, 7, 8), 2, False),
        (layers.TLU, {"affine": True}, (4, 5, 8), 2, False),
    ],
    ids=["frn_tlu", "frn_channels_first_learned_epsilon", "frn_no_tlu", "tlu_affine"],
)
def test_layer_checker(cls, kwargs, shape, trainable, jit, tmp_path, rng):
    check_layer(
        cls,
        kwargs,
        shape,
        str(tmp_path),
        expected_num_trainable_weights=trainable,
        mask_axis=kwargs.get("axis", -1),
        jit_compile_true=jit,
        seed=int(rng.integers(2**31)),
    )
