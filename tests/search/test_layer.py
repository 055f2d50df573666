"""EvolvedNormAct against the float64 oracle (tests/oracles/evolved.py), plus the layer checker.

Genomes here cover all 21 primitives. Tolerances (float32 layer vs float64 oracle): outputs and
moving statistics 1e-5 absolute and relative; gradients 1e-4 relative to the largest entry.
"""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.search import EvolvedNormAct, parse
from keras_norms.testing import check_layer, vjp_numpy
from tests.oracles.derivatives import complex_step_vjp
from tests.oracles.evolved import evolved

CHANNELS = 8
GROUPS = 2
SPATIAL = {3: (5,), 4: (3, 4), 5: (2, 3, 2)}
OUTPUT_TOLERANCE = 1e-5
GRADIENT_TOLERANCE = 1e-4

# Well-conditioned on inputs of order 1 (log(|z| + 1), not log|z|, whose float32 rounding near
# z = 0 is no fault of the layer), and together every primitive.
GENOMES = [
    "add(tanh(mul(v1, x)), log(add(abs(add(x, v0)), exp(zero))))",
    "div(square(add(x, neg(mean_instance(x)))), sqrt(add(mean_square_group(x), exp(zero))))",
    "mul(exp(neg(abs(x))), max(sigmoid(x), sqrt(mean_batch(x))))",
    "mul(v1, div(add(x, neg(mean_batch(x))), sqrt(add(variance_batch(x), mean_square_batch(x)))))",
    "mul(x, add(sigmoid(variance_instance(x)), sqrt(add(variance_group(x), mean_square_instance(x)))))",
    "add(mul(x, sigmoid(mean_group(x))), max(neg(x), v0))",
]


def input_shape(rank, channels_first, batch=3):
    spatial = SPATIAL[rank]
    return (batch, CHANNELS, *spatial) if channels_first else (batch, *spatial, CHANNELS)


def make_layer(genome, rank, channels_first, rng, **kwargs):
    """The layer, built, with random non-initial weights; returns it and its weights (float64)."""
    layer = EvolvedNormAct(genome, axis=1 if channels_first else -1, groups=GROUPS, **kwargs)
    layer.build(input_shape(rank, channels_first))
    weights = {}
    for variable in layer.weights:
        low, high = (
            (0.5, 1.5)
            if variable.name.startswith(("gamma", "v1", "moving_variance", "moving_mean_square"))
            else (
                -0.5,
                0.5,
            )
        )
        weights[variable.name] = rng.uniform(low, high, variable.shape)
        variable.assign(weights[variable.name].astype("float32"))
    return layer, weights


def oracle(layer, weights, x, channels_first, training, moving=None):
    nodes = [(node.primitive, node.inputs) for node in layer.genome.nodes]
    ones, zeros = np.ones(CHANNELS), np.zeros(CHANNELS)
    return evolved(
        x,
        nodes,
        v0=weights.get("v0", zeros),
        v1=weights.get("v1", ones),
        gamma=weights.get("gamma", ones),
        beta=weights.get("beta", zeros),
        channel_axis=1 if channels_first else -1,
        groups=GROUPS,
        epsilon=layer.epsilon,
        training=training,
        moving=moving,
        momentum=layer.momentum,
    )


def moving_of(layer, weights=None):
    """Node index -> moving value, from the layer's variables (or from `weights` by name)."""
    values = {}
    for index, variable in layer.moving.items():
        values[index] = np.asarray(weights[variable.name] if weights else keras.ops.convert_to_numpy(variable))
    return values


@pytest.mark.parametrize("rank, channels_first", [(4, False), (3, True), (5, False), (4, True)])
@pytest.mark.parametrize("genome", GENOMES)
def test_training_steps_then_inference_match_oracle(genome, rank, channels_first, rng):
    layer, weights = make_layer(genome, rank, channels_first, rng)
    moving = moving_of(layer, weights)
    for _ in range(3):
        x = rng.standard_normal(input_shape(rank, channels_first)) * 1.5 + 0.3
        want, moving = oracle(layer, weights, x, channels_first, True, moving)
        got = keras.ops.convert_to_numpy(layer(x.astype("float32"), training=True))
        np.testing.assert_allclose(got, want, rtol=OUTPUT_TOLERANCE, atol=OUTPUT_TOLERANCE)
        for index, value in moving_of(layer).items():
            np.testing.assert_allclose(value, moving[index], rtol=OUTPUT_TOLERANCE, atol=OUTPUT_TOLERANCE)
    x = rng.standard_normal(input_shape(rank, channels_first)) * 1.5 + 0.3
    want, _ = oracle(layer, weights, x, channels_first, False, moving)
    got = keras.ops.convert_to_numpy(layer(x.astype("float32"), training=False))
    np.testing.assert_allclose(got, want, rtol=OUTPUT_TOLERANCE, atol=OUTPUT_TOLERANCE)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("genome", GENOMES)
def test_gradients_match_oracle(genome, training, rng):
    layer, weights = make_layer(genome, 4, False, rng)
    shape = input_shape(4, False, batch=2)
    x = (rng.standard_normal(shape) * 1.5 + 0.3).astype("float32")
    upstream = rng.standard_normal(shape).astype("float32")
    names = [w.name for w in layer.trainable_weights]
    moving = moving_of(layer, weights)

    def function(x, *trainable):
        return oracle(layer, {**weights, **dict(zip(names, trainable))}, x, False, training, moving)[0]

    expected = complex_step_vjp(function, [x.astype(np.float64)] + [weights[n] for n in names], upstream)
    _, dx, dweights = vjp_numpy(layer, x, upstream, training=training)
    for name, got, want in zip(["inputs"] + names, [dx] + dweights, expected):
        scale = np.abs(want).max()
        np.testing.assert_allclose(
            got, want, rtol=GRADIENT_TOLERANCE, atol=GRADIENT_TOLERANCE * scale, err_msg=f"gradient of {name}"
        )


def test_weights_exist_only_for_what_the_genome_uses():
    layer = EvolvedNormAct("div(x, sqrt(variance_batch(x)))")
    layer.build((2, 4, 4, 8))
    assert [w.name for w in layer.weights] == ["gamma", "beta", "moving_variance_4"]
    layer = EvolvedNormAct("max(mul(v1, x), v0)", center=False)
    layer.build((2, 4, 8))
    assert [w.name for w in layer.trainable_weights] == ["gamma", "v0", "v1"]


def test_masked_positions_are_left_out_of_aggregates(rng):
    """A masked position changes neither the statistics nor the valid outputs."""
    layer = EvolvedNormAct(
        "div(add(x, neg(mean_batch(x))), sqrt(add(variance_instance(x), variance_group(x))))", groups=2
    )
    x = rng.standard_normal((2, 6, CHANNELS)).astype("float32")
    mask = np.ones((2, 6), bool)
    mask[:, 4:] = False
    garbage = x.copy()
    garbage[:, 4:] = 1e3
    y = keras.ops.convert_to_numpy(layer(x, training=True, mask=mask))
    y_garbage = keras.ops.convert_to_numpy(layer(garbage, training=True, mask=mask))
    np.testing.assert_allclose(y[:, :4], y_garbage[:, :4], rtol=1e-5, atol=1e-5)
    want, _ = oracle(layer, {}, x[:, :4].astype(np.float64), False, True, {4: np.zeros(CHANNELS)})
    np.testing.assert_allclose(y[:, :4], want, rtol=1e-5, atol=1e-5)


def test_config_round_trip_and_registry():
    layer = EvolvedNormAct(parse("div(x, sqrt(variance_group(x)))"), groups=4, momentum=0.8, axis=1)
    clone = EvolvedNormAct.from_config(layer.get_config())
    assert clone.genome == layer.genome and clone.groups == 4 and clone.momentum == 0.8 and clone.axis == 1
    built = keras_norms.get("evolved", genome="div(x, sqrt(variance_group(x)))", groups=4)
    assert isinstance(built, EvolvedNormAct) and str(built.genome) == "div(x, sqrt(variance_group(x)))"


def test_replace_norm_layers_builds_evolved_layers(rng):
    inputs = keras.Input((8, 8, 3))
    hidden = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    hidden = keras.layers.BatchNormalization()(hidden)
    hidden = keras.layers.ReLU()(hidden)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(hidden))
    model = keras.Model(inputs, outputs)
    genome = "div(x, max(sqrt(variance_batch(x)), add(mul(v1, x), sqrt(variance_instance(x)))))"
    swapped, report = keras_norms.surgery.replace_norm_layers(model, "evolved", genome=genome)
    evolved_layers = [layer for layer in swapped.layers if isinstance(layer, EvolvedNormAct)]
    assert len(evolved_layers) == 1 and str(evolved_layers[0].genome) == genome
    assert report[0]["fused"] and not any(isinstance(layer, keras.layers.ReLU) for layer in swapped.layers)
    x = rng.standard_normal((2, 8, 8, 3)).astype("float32")
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(swapped(x, training=True))))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"genome": "div(x, frobnicate(x))"}, "frobnicate"),
        ({"genome": "add(x)"}, "takes 2 input"),
        ({"genome": "div(x, sqrt(x)) x"}, "unexpected"),
        ({"genome": "sigmoid(v1)"}, "depend on `x`"),
        ({"genome": 3}, "Genome or its text"),
        ({"genome": "x", "momentum": 1.5}, "momentum"),
        ({"genome": "x", "groups": 0}, "groups"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        EvolvedNormAct(**kwargs)


def test_groups_must_divide_channels_when_the_genome_groups():
    EvolvedNormAct("div(x, sqrt(variance_batch(x)))", groups=3).build((2, 4, 8))  # no group aggregate: fine
    with pytest.raises(ValueError, match=r"groups.*divide.*Received: groups=3"):
        EvolvedNormAct("div(x, sqrt(variance_group(x)))", groups=3).build((2, 4, 8))


@pytest.mark.parametrize(
    "genome, kwargs, shape, trainable, non_trainable, jit",
    [
        (
            "div(x, max(sqrt(variance_batch(x)), add(mul(v1, x), sqrt(variance_instance(x)))))",
            {},
            (4, 5, 6, 8),
            3,
            1,
            True,
        ),
        (
            "add(mul(x, sigmoid(mean_group(x))), max(neg(x), v0))",
            {"groups": 2, "axis": 1},
            (4, 8, 3, 3, 3),
            3,
            0,
            False,
        ),
    ],
)
def test_layer_checker(genome, kwargs, shape, trainable, non_trainable, jit, tmp_path, rng):
    check_layer(
        EvolvedNormAct,
        {"genome": genome, **kwargs},
        shape,
        str(tmp_path),
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=non_trainable,
        mask_axis=kwargs.get("axis", -1),
        jit_compile_true=jit,
        seed=int(rng.integers(2**31)),
    )
