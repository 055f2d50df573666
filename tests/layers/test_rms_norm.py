"""RMSNormalization and CRMSNormalization against the float64 oracle, plus the shared layer checker.

Tolerances (float32 layer vs float64 oracle): outputs 1e-5 absolute and relative; gradients 1e-4
relative to the largest gradient entry; the CRMS/RMS identity 1e-6.
"""

import keras
import numpy as np
import pytest

from keras_norms import layers
from keras_norms.testing import check_layer, vjp_numpy
from tests.oracles.derivatives import complex_step_vjp
from tests.oracles.rms import crms_norm, rms_norm

OUTPUT_TOLERANCE = 1e-5
GRADIENT_TOLERANCE = 1e-4
SHAPE = (2, 5, 12)

# (class, constructor arguments, normalized axes of SHAPE)
CASES = {
    "rms": (layers.RMSNormalization, {}, (2,)),
    "rms_bias": (layers.RMSNormalization, {"center": True, "epsilon": 1e-3}, (2,)),
    "rms_no_scale": (layers.RMSNormalization, {"scale": False, "center": True}, (2,)),
    "rms_zero_centered": (layers.RMSNormalization, {"zero_centered_gamma": True, "center": True}, (2,)),
    "rms_two_axes": (layers.RMSNormalization, {"axis": [-2, -1]}, (1, 2)),
    "rms_axis_1": (layers.RMSNormalization, {"axis": 1}, (1,)),
    "crms": (layers.CRMSNormalization, {}, (2,)),
    "crms_bias": (layers.CRMSNormalization, {"center": True, "zero_centered_gamma": True}, (2,)),
}


def make_layer(case, rng):
    cls, kwargs, axes = CASES[case]
    layer = cls(**kwargs)
    layer.build(SHAPE)
    param_shape = [SHAPE[a] if a in axes else 1 for a in range(len(SHAPE))]
    weights = {}
    for w in layer.weights:
        low, high = (-0.5, 0.5) if w.name == "beta" or layer.zero_centered_gamma else (0.5, 1.5)
        weights[w.name] = rng.uniform(low, high, w.shape)
        w.assign(weights[w.name].astype("float32"))
    return layer, weights, axes, param_shape


def oracle(layer, weights, axes, param_shape, x):
    gamma, beta = (weights.get(n) for n in ("gamma", "beta"))
    gamma = None if gamma is None else gamma.reshape(param_shape)
    beta = None if beta is None else beta.reshape(param_shape)
    if isinstance(layer, layers.CRMSNormalization):
        return crms_norm(x, layer.epsilon, gamma, beta, layer.zero_centered_gamma)
    return rms_norm(x, axes, layer.epsilon, gamma, beta, layer.zero_centered_gamma)


def to_numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype=np.float64)


@pytest.mark.parametrize("case", list(CASES))
def test_matches_oracle(case, rng):
    layer, weights, axes, param_shape = make_layer(case, rng)
    x = rng.standard_normal(SHAPE).astype("float32") * 2.0 + 0.5
    expected = oracle(layer, weights, axes, param_shape, x.astype(np.float64))
    mask = rng.random(SHAPE[:2]) > 0.5
    for training in (True, False):
        got = to_numpy(layer(x, training=training, mask=mask))
        np.testing.assert_allclose(got, expected, rtol=OUTPUT_TOLERANCE, atol=OUTPUT_TOLERANCE)


@pytest.mark.parametrize("case", list(CASES))
def test_gradients_match_oracle(case, rng):
    layer, weights, axes, param_shape = make_layer(case, rng)
    x = rng.standard_normal(SHAPE).astype("float32") * 2.0 + 0.5
    upstream = rng.standard_normal(SHAPE).astype("float32")
    names = [w.name for w in layer.trainable_weights]

    def function(x, *trainable):
        return oracle(layer, {**weights, **dict(zip(names, trainable))}, axes, param_shape, x)

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


@pytest.mark.parametrize("epsilon", [1e-6, 1e-2])
def test_crms_equals_rms_of_restored_zero_mean_vector(epsilon, rng):
    z = rng.standard_normal((3, 4, 15)).astype("float32")
    full = np.concatenate([z, -z.sum(axis=-1, keepdims=True)], axis=-1)
    crms = to_numpy(layers.CRMSNormalization(epsilon=epsilon, scale=False)(z))
    rms = to_numpy(layers.RMSNormalization(epsilon=epsilon, scale=False)(full))[..., :-1]
    np.testing.assert_allclose(crms, rms, rtol=0, atol=1e-6)


def test_matches_keras_rms_normalization(rng):
    x = rng.standard_normal(SHAPE).astype("float32")
    ours = layers.RMSNormalization(epsilon=1e-6)
    core = keras.layers.RMSNormalization(epsilon=1e-6)
    ours.build(SHAPE)
    core.build(SHAPE)
    gamma = rng.uniform(0.5, 1.5, SHAPE[-1]).astype("float32")
    ours.gamma.assign(gamma)
    core.scale.assign(gamma)
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(core(x)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "cls, axis, center",
    [
        (layers.RMSNormalization, -1, True),
        (layers.RMSNormalization, [-2, -1], False),
        (layers.CRMSNormalization, -1, True),
    ],
)
def test_trailing_axes_serve_any_rank_like_keras(cls, axis, center, rng):
    """Built on one rank, called on others with the same trailing sizes, as keras' RMSNormalization."""
    layer = cls(axis=axis, center=center)
    trailing = (3, 8) if isinstance(axis, list) else (8,)
    layer.build((2, 5, *trailing))
    gamma = rng.uniform(0.5, 1.5, trailing)
    layer.gamma.assign(gamma.astype("float32"))
    beta = None
    if center:
        beta = rng.standard_normal(trailing)
        layer.beta.assign(beta.astype("float32"))
    axes = tuple(range(-len(trailing), 0))
    for shape in [(2, 5, *trailing), (4, *trailing), (2, 3, 2, *trailing)]:
        x = rng.standard_normal(shape).astype("float32")
        x64 = x.astype(np.float64)
        if cls is layers.CRMSNormalization:
            expected = crms_norm(x64, layer.epsilon, gamma, beta)
        else:
            expected = rms_norm(x64, axes, layer.epsilon, gamma, beta)
        np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=OUTPUT_TOLERANCE, atol=OUTPUT_TOLERANCE)
    # One layer shared by a sequence and a vector in a functional model.
    sequence, vector = keras.Input((5, *trailing)), keras.Input(trailing)
    model = keras.Model([sequence, vector], [layer(sequence), layer(vector)])
    xs, xv = rng.standard_normal((2, 5, *trailing)), rng.standard_normal((2, *trailing))
    ys, yv = model.predict([xs, xv], verbose=0)
    np.testing.assert_allclose(yv, to_numpy(layer(xv.astype("float32"))), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ys, to_numpy(layer(xs.astype("float32"))), rtol=1e-6, atol=1e-6)


def test_mixed_precision_statistics_do_not_overflow():
    # mean(x**2) = 9e4 overflows float16 (max 65504); float32 statistics keep the output right.
    x = np.full((2, 8), 300.0, "float32")
    for policy in ("mixed_float16", "mixed_bfloat16"):
        y = to_numpy(layers.RMSNormalization(dtype=policy)(keras.ops.cast(x, policy.split("_")[1])))
        np.testing.assert_allclose(y, np.ones_like(x), rtol=1e-2)


@pytest.mark.parametrize(
    "cls, kwargs, error, match",
    [
        (layers.RMSNormalization, {"axis": "last"}, TypeError, "axis"),
        (layers.RMSNormalization, {"axis": []}, TypeError, "axis"),
        (layers.RMSNormalization, {"epsilon": -1e-6}, ValueError, "epsilon"),
        (layers.RMSNormalization, {"zero_centered_gamma": "yes"}, TypeError, "zero_centered_gamma"),
        (layers.RMSNormalization, {"center": None}, TypeError, "center"),
        (layers.CRMSNormalization, {"axis": [-1]}, TypeError, "axis"),
    ],
)
def test_bad_arguments_raise_at_construction(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("axis", [0, 3, [1, 1]])
def test_bad_axis_raises_at_build(axis):
    with pytest.raises(ValueError, match="axis"):
        layers.RMSNormalization(axis=axis).build(SHAPE)


CHECKER_CASES = [
    # (class, kwargs, input shape, trainable weights, jit_compile=True)
    (layers.RMSNormalization, {"center": True}, (4, 6, 16), 2, True),
    (layers.RMSNormalization, {"zero_centered_gamma": True, "axis": [-2, -1]}, (4, 6, 16), 1, False),
    (layers.CRMSNormalization, {"center": True}, (4, 6, 15), 2, False),
]


@pytest.mark.parametrize("cls, kwargs, shape, trainable, jit", CHECKER_CASES)
def test_layer_checker(cls, kwargs, shape, trainable, jit, tmp_path, rng):
    check_layer(
        cls,
        kwargs,
        shape,
        str(tmp_path),
        expected_num_trainable_weights=trainable,
        jit_compile_true=jit,
        seed=int(rng.integers(2**31)),
    )
