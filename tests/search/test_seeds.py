"""The seed genomes are exactly the hand-written layers: the search space contains what the paper found.

`EvolvedNormAct(SEEDS[name])` against EvoNormB0/B1/B2/S0/S1/S2 and Keras' BatchNormalization +
ReLU, with the same (random, non-initial) weights: outputs, input and parameter gradients and
moving statistics over three training steps, then inference. Both sides are float32 Keras layers
on the same backend, so the tolerance is float32 rounding: 1e-5 (relative, and absolute relative
to the largest entry).
"""

import keras
import numpy as np
import pytest

from keras_norms import layers
from keras_norms.search import SEEDS, EvolvedNormAct
from keras_norms.testing import vjp_numpy

TOLERANCE = 1e-5
CHANNELS = 8
GROUPS = 2
SHAPES = {"channels_last": ((4, 3, 5, CHANNELS), -1), "channels_first": ((4, CHANNELS, 6), 1)}


def bn_relu(axis):
    inputs = keras.Input(SHAPES["channels_first" if axis == 1 else "channels_last"][0][1:])
    norm = keras.layers.BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-5)
    return keras.Model(inputs, keras.layers.ReLU()(norm(inputs)))


# seed -> (reference layer factory(axis), EvolvedNormAct arguments, evolved weight -> reference weight)
CASES = {
    "bn_relu": (
        bn_relu,
        {"center": False, "scale": False},
        {"v1": "gamma", "v0": "beta", "moving_mean_4": "moving_mean", "moving_variance_7": "moving_variance"},
    ),
    "evonorm_b0": (
        lambda axis: layers.EvoNormB0(axis=axis),
        {},
        {"gamma": "gamma", "beta": "beta", "v1": "v", "moving_variance_4": "moving_variance"},
    ),
    "evonorm_b1": (
        lambda axis: layers.EvoNormB1(axis=axis),
        {},
        {"gamma": "gamma", "beta": "beta", "moving_variance_4": "moving_variance"},
    ),
    "evonorm_b2": (
        lambda axis: layers.EvoNormB2(axis=axis),
        {},
        {"gamma": "gamma", "beta": "beta", "moving_variance_4": "moving_variance"},
    ),
    "evonorm_s0": (
        lambda axis: layers.EvoNormS0(axis=axis, groups=GROUPS),
        {"groups": GROUPS},
        {"gamma": "gamma", "beta": "beta", "v1": "v"},
    ),
    "evonorm_s1": (
        lambda axis: layers.EvoNormS1(axis=axis, groups=GROUPS),
        {"groups": GROUPS},
        {"gamma": "gamma", "beta": "beta"},
    ),
    "evonorm_s2": (
        lambda axis: layers.EvoNormS2(axis=axis, groups=GROUPS),
        {"groups": GROUPS},
        {"gamma": "gamma", "beta": "beta"},
    ),
}


def by_name(layer):
    return {w.name: w for w in layer.weights}


def assert_close(got, want, what):
    scale = float(np.max(np.abs(want))) if np.size(want) else 1.0
    np.testing.assert_allclose(got, want, rtol=TOLERANCE, atol=TOLERANCE * scale, err_msg=what)


@pytest.mark.parametrize("layout", list(SHAPES))
@pytest.mark.parametrize("name", list(CASES))
def test_seed_equals_the_hand_written_layer(name, layout, rng):
    shape, axis = SHAPES[layout]
    make_reference, arguments, mapping = CASES[name]
    reference = make_reference(axis)
    evolved = EvolvedNormAct(SEEDS[name], axis=axis, **arguments)
    reference.build(shape)
    evolved.build(shape)
    mine, theirs = by_name(evolved), by_name(reference)
    assert sorted(mine) == sorted(mapping), "the seed has exactly the hand-written layer's weights"
    for evolved_name, reference_name in mapping.items():
        positive = reference_name in ("gamma", "v", "moving_variance")
        value = rng.uniform(0.5, 1.5, CHANNELS) if positive else rng.normal(0.0, 0.5, CHANNELS)
        mine[evolved_name].assign(value.astype("float32"))
        theirs[reference_name].assign(value.astype("float32"))
    trainable = [w.name for w in evolved.trainable_weights]
    reference_order = [w.name for w in reference.trainable_weights]
    for step, training in enumerate([True, True, True, False]):
        x = (rng.standard_normal(shape) * 1.5 + 0.3).astype("float32")
        upstream = rng.standard_normal(shape).astype("float32")
        y_mine, dx_mine, dw_mine = vjp_numpy(evolved, x, upstream, training=training)
        y_ref, dx_ref, dw_ref = vjp_numpy(reference, x, upstream, training=training)
        label = f"step {step} ({'training' if training else 'inference'})"
        assert_close(y_mine, y_ref, f"outputs, {label}")
        assert_close(dx_mine, dx_ref, f"input gradient, {label}")
        gradients = dict(zip(reference_order, dw_ref))
        for evolved_name, gradient in zip(trainable, dw_mine):
            assert_close(gradient, gradients[mapping[evolved_name]], f"gradient of {evolved_name}, {label}")
        for evolved_name, reference_name in mapping.items():
            if evolved_name.startswith("moving"):
                got = keras.ops.convert_to_numpy(mine[evolved_name])
                want = keras.ops.convert_to_numpy(theirs[reference_name])
                assert_close(got, want, f"{evolved_name} after {label}")
