"""EvoNorm layers against the float64 oracle, plus the shared layer checker.

Tolerances (float32 layer vs float64 oracle): outputs and moving variance 1e-5 absolute and
relative; gradients 1e-4 relative to the largest gradient entry.
"""

import keras
import numpy as np
import pytest

from keras_norms import layers
from keras_norms.testing import check_layer, vjp_numpy
from tests.oracles.derivatives import complex_step_vjp
from tests.oracles.evonorm import BATCH_VARIANTS, evonorm

VARIANTS = {
    "B0": layers.EvoNormB0,
    "B1": layers.EvoNormB1,
    "B2": layers.EvoNormB2,
    "S0": layers.EvoNormS0,
    "S1": layers.EvoNormS1,
    "S2": layers.EvoNormS2,
    "S0a": layers.EvoNormS0a,
    "S1a": layers.EvoNormS1a,
    "S2a": layers.EvoNormS2a,
}
CHANNELS = 8
GROUPS = 2
SPATIAL = {3: (5,), 4: (3, 4), 5: (2, 3, 2)}
OUTPUT_TOLERANCE = 1e-5
GRADIENT_TOLERANCE = 1e-4


def input_shape(rank, channels_first, batch=2):
    spatial = SPATIAL[rank]
    return (batch, CHANNELS, *spatial) if channels_first else (batch, *spatial, CHANNELS)


def random_input(rng, shape):
    return rng.standard_normal(shape) * 1.5 + 0.3


def random_mask(rng, shape, channel_axis):
    mask_shape = list(shape)
    del mask_shape[channel_axis]
    mask = rng.random(mask_shape) > 0.3
    mask.reshape(mask.shape[0], -1)[:, 0] = True  # at least one valid position per sample
    return mask


def make_layer(variant, rank, channels_first, apply_act, rng, **kwargs):
    """The layer, built, with random (not initial) weights, and those weights in float64."""
    kwargs = {"axis": 1 if channels_first else -1, "apply_act": apply_act, **kwargs}
    if variant.startswith("S"):
        kwargs["groups"] = GROUPS
    layer = VARIANTS[variant](**kwargs)
    layer.build(input_shape(rank, channels_first))
    weights = {
        "gamma": rng.uniform(0.5, 1.5, CHANNELS),
        "beta": rng.normal(0.0, 0.5, CHANNELS),
        "v": rng.normal(1.0, 0.5, CHANNELS),
        "moving_variance": rng.uniform(0.5, 2.0, CHANNELS),
    }
    weights = {w.name: weights[w.name] for w in layer.weights}
    for w in layer.weights:
        w.assign(weights[w.name].astype("float32"))
    return layer, weights


def oracle(layer, variant, weights, x, **kwargs):
    return evonorm(
        x,
        variant,
        weights.get("gamma"),
        weights.get("beta"),
        weights.get("v"),
        channel_axis=1 if layer.axis == 1 else -1,
        epsilon=layer.epsilon,
        apply_act=layer.apply_act,
        momentum=getattr(layer, "momentum", None),
        bessel_correction=getattr(layer, "bessel_correction", False),
        groups=getattr(layer, "groups", None),
        **kwargs,
    )


def to_numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype=np.float64)


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("rank", [3, 4, 5])
@pytest.mark.parametrize("channels_first", [False, True], ids=["channels_last", "channels_first"])
@pytest.mark.parametrize("apply_act", [True, False], ids=["act", "no_act"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_training_steps_then_inference_match_oracle(variant, apply_act, channels_first, rank, masked, rng):
    layer, weights = make_layer(variant, rank, channels_first, apply_act, rng)
    moving_variance = weights.get("moving_variance")
    shape = input_shape(rank, channels_first)
    channel_axis = 1 if channels_first else -1
    for training in (True, True, True, False):
        x = random_input(rng, shape).astype("float32")
        mask = random_mask(rng, shape, channel_axis) if masked else None
        expected, new_moving_variance = oracle(
            layer,
            variant,
            weights,
            x.astype(np.float64),
            training=training,
            moving_variance=moving_variance,
            mask=mask,
        )
        got = to_numpy(layer(x, training=training, mask=mask))
        np.testing.assert_allclose(got, expected, rtol=OUTPUT_TOLERANCE, atol=OUTPUT_TOLERANCE)
        if new_moving_variance is not None:
            moving_variance = new_moving_variance
            np.testing.assert_allclose(
                to_numpy(layer.moving_variance.value),
                moving_variance,
                rtol=OUTPUT_TOLERANCE,
                atol=OUTPUT_TOLERANCE,
            )


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("rank", [3, 4, 5])
@pytest.mark.parametrize("channels_first", [False, True], ids=["channels_last", "channels_first"])
@pytest.mark.parametrize("apply_act", [True, False], ids=["act", "no_act"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gradients_match_oracle(variant, apply_act, channels_first, rank, training, rng):
    layer, weights = make_layer(variant, rank, channels_first, apply_act, rng)
    shape = input_shape(rank, channels_first)
    x = random_input(rng, shape).astype("float32")
    # Sequences (rank 3) carry a mask, so the masked statistics are differentiated too.
    mask = random_mask(rng, shape, 1 if channels_first else -1) if rank == 3 else None
    upstream = rng.standard_normal(shape).astype("float32")
    names = [w.name for w in layer.trainable_weights]

    def function(x, *trainable):
        values = {**weights, **dict(zip(names, trainable))}
        y, _ = oracle(
            layer,
            variant,
            values,
            x,
            training=training,
            moving_variance=weights.get("moving_variance"),
            mask=mask,
        )
        return y

    expected = complex_step_vjp(function, [x.astype(np.float64)] + [weights[n] for n in names], upstream)
    _, dx, dweights = vjp_numpy(layer, x, upstream, training=training, mask=mask)
    for name, got, want in zip(["inputs"] + names, [dx] + dweights, expected):
        scale = np.abs(want).max()
        np.testing.assert_allclose(
            got,
            want,
            rtol=GRADIENT_TOLERANCE,
            atol=GRADIENT_TOLERANCE * scale,
            err_msg=f"gradient with respect to {name}",
        )


@pytest.mark.parametrize("variant", BATCH_VARIANTS)
def test_bessel_correction_reproduces_unbiased_moving_variance(variant, rng):
    layer, weights = make_layer(variant, 4, False, True, rng, bessel_correction=True, momentum=0.8)
    x = random_input(rng, input_shape(4, False)).astype("float32")
    _, expected = oracle(
        layer,
        variant,
        weights,
        x.astype(np.float64),
        training=True,
        moving_variance=weights["moving_variance"],
    )
    layer(x, training=True)
    np.testing.assert_allclose(to_numpy(layer.moving_variance.value), expected, rtol=1e-5, atol=1e-5)
    flat = np.moveaxis(x.astype(np.float64), -1, 0).reshape(CHANNELS, -1)
    unbiased = 0.8 * weights["moving_variance"] + 0.2 * flat.var(axis=1, ddof=1)
    np.testing.assert_allclose(expected, unbiased, rtol=1e-12)


@pytest.mark.parametrize("variant", BATCH_VARIANTS)
def test_non_trainable_layer_uses_moving_variance_in_training(variant, rng):
    layer, weights = make_layer(variant, 4, False, True, rng)
    layer.trainable = False
    x = random_input(rng, input_shape(4, False)).astype("float32")
    expected, _ = oracle(
        layer,
        variant,
        weights,
        x.astype(np.float64),
        training=False,
        moving_variance=weights["moving_variance"],
    )
    np.testing.assert_allclose(to_numpy(layer(x, training=True)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(to_numpy(layer.moving_variance.value), weights["moving_variance"].astype("float32"))


@pytest.mark.parametrize("variant", ["S0", "S1a"])
def test_group_size_sets_groups(variant, rng):
    by_size = VARIANTS[variant](group_size=4)
    by_count = VARIANTS[variant](groups=CHANNELS // 4)
    x = random_input(rng, (2, 3, 3, CHANNELS)).astype("float32")
    by_size.build(x.shape)
    by_count.build(x.shape)
    for a, b in zip(by_size.weights, by_count.weights):
        b.assign(a)
    np.testing.assert_allclose(to_numpy(by_size(x)), to_numpy(by_count(x)), rtol=0, atol=0)


@pytest.mark.parametrize("variant", ["B0", "S0"])
def test_fully_masked_sample_stays_finite(variant, rng):
    layer, _ = make_layer(variant, 3, False, True, rng)
    shape = input_shape(3, False)
    mask = np.ones(shape[:-1], bool)
    mask[1] = False
    y = to_numpy(layer(random_input(rng, shape).astype("float32"), training=True, mask=mask))
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize(
    "kwargs, shape, error, match",
    [
        ({"groups": 3}, (2, 4, 4, 8), ValueError, "group_size"),
        ({"group_size": 3}, (2, 4, 4, 8), ValueError, "group_size=3"),
        ({"axis": 0}, (2, 4, 4, 8), ValueError, "axis=0"),
        ({"axis": 4}, (2, 4, 4, 8), ValueError, "axis=4"),
        ({}, (2, 8), ValueError, "rank 3 to 5"),
        ({}, (2, 2, 2, 2, 2, 8), ValueError, "rank 3 to 5"),
    ],
)
def test_bad_input_raises_at_build(kwargs, shape, error, match):
    with pytest.raises(error, match=match):
        layers.EvoNormS0(**kwargs).build(shape)


@pytest.mark.parametrize(
    "cls, kwargs, error, match",
    [
        (layers.EvoNormB0, {"momentum": 1.5}, ValueError, "momentum"),
        (layers.EvoNormB0, {"epsilon": -1.0}, ValueError, "epsilon"),
        (layers.EvoNormB0, {"apply_act": "yes"}, TypeError, "apply_act"),
        (layers.EvoNormB1, {"bessel_correction": 1}, TypeError, "bessel_correction"),
        (layers.EvoNormB2, {"synchronized": "yes"}, TypeError, "synchronized"),
        (layers.EvoNormS0, {"groups": 0}, ValueError, "groups"),
        (layers.EvoNormS2, {"group_size": 2.5}, TypeError, "group_size"),
        (layers.EvoNormS0, {"axis": "last"}, TypeError, "axis"),
        (layers.EvoNormB1, {"v_initializer": "zeros"}, TypeError, "no `v`"),
        (layers.EvoNormS2a, {"v_constraint": "non_neg"}, TypeError, "no `v`"),
    ],
)
def test_bad_arguments_raise_at_construction(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("variant", ["B0", "S2"])
def test_compiled_model_with_unknown_spatial_size_matches_eager_call(variant, rng):
    layer, _ = make_layer(variant, 4, False, True, rng)
    inputs = keras.Input((None, None, CHANNELS))
    model = keras.Model(inputs, layer(inputs))
    for height, width in ((4, 5), (3, 2)):
        x = random_input(rng, (3, height, width, CHANNELS)).astype("float32")
        got = model.predict(x, verbose=0)
        np.testing.assert_allclose(got, to_numpy(layer(x, training=False)), rtol=1e-6, atol=1e-6)


def test_mask_of_wrong_rank_raises(rng):
    x = random_input(rng, (2, 5, CHANNELS)).astype("float32")
    with pytest.raises(ValueError, match="mask"):
        layers.EvoNormB0()(x, training=True, mask=np.ones((2, 5, CHANNELS), bool))


CHECKER_CASES = [
    # (variant, kwargs, input shape, trainable, non-trainable, jit_compile=True)
    ("B0", {}, (4, 5, 6, CHANNELS), 3, 1, True),
    ("B1", {"axis": 1}, (4, CHANNELS, 5, 6), 2, 1, False),
    ("B2", {"apply_act": False}, (4, 7, CHANNELS), 2, 0, False),
    ("S0", {"groups": GROUPS}, (4, 5, 6, CHANNELS), 3, 0, True),
    ("S1", {"group_size": 4, "axis": 1}, (4, CHANNELS, 3, 3, 3), 2, 0, False),
    ("S2", {"groups": GROUPS}, (4, 7, CHANNELS), 2, 0, False),
    ("S0a", {"groups": GROUPS, "apply_act": False}, (4, 5, 6, CHANNELS), 2, 0, False),
    ("S1a", {"groups": GROUPS}, (4, 5, 6, CHANNELS), 2, 0, False),
    ("S2a", {"groups": GROUPS, "center": False}, (4, 5, 6, CHANNELS), 1, 0, False),
]


@pytest.mark.parametrize("variant, kwargs, shape, trainable, non_trainable, jit", CHECKER_CASES)
def test_layer_checker(variant, kwargs, shape, trainable, non_trainable, jit, tmp_path, rng):
    check_layer(
        VARIANTS[variant],
        kwargs,
        shape,
        str(tmp_path),
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=non_trainable,
        mask_axis=kwargs.get("axis", -1),
        jit_compile_true=jit,
        seed=int(rng.integers(2**31)),
    )
