"""Layers by name (keras_norms.registry): what the registry does, for whatever it holds.

No copy of the registry here: every test runs over `keras_norms.names()`, so a layer added to the
registry is tested without editing this file, and one exported but left out of it fails
`test_every_exported_layer_has_a_name`.
"""

import inspect
import json
import re

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms import activations, layers, search
from keras_norms.registry import layer_class

# One input every registered layer takes with its defaults: rank 3 (EvoNorm, FRN and PowerNorm
# want (batch, time, channels) or a feature map), 32 channels (EvoNorm-S's default groups=32).
SHAPE = (2, 5, 32)

# Values for constructor arguments without defaults, by argument name (not by layer).
REQUIRED_VALUES = {
    "units": 3,
    "num_classes": 3,
    "num_random_features": 8,
    "coefficients": [0.3, 0.8, 0.3],
    "basis": np.eye(SHAPE[-1]),
    "genome": "div(x, max(sqrt(variance_batch(x)), add(mul(v1, x), sqrt(variance_instance(x)))))",
}


def exported_layer_classes():
    exported = [getattr(layers, n) for n in layers.__all__] + [getattr(activations, n) for n in activations.__all__]
    exported.append(search.EvolvedNormAct)
    return {c for c in exported if isinstance(c, type) and issubclass(c, keras.layers.Layer)}


def required_arguments(cls):
    parameters = inspect.signature(cls.__init__).parameters.values()
    required = [
        p.name
        for p in parameters
        if p.name != "self" and p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    missing = [n for n in required if n not in REQUIRED_VALUES]
    assert not missing, f"{cls.__name__} requires {missing}: give them a value in REQUIRED_VALUES"
    return {n: REQUIRED_VALUES[n] for n in required}


def build(name):
    return keras_norms.get(name, **required_arguments(layer_class(name)))


def to_numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype=np.float64)


def test_names_are_sorted_unique_canonical_and_resolve():
    names = keras_norms.names()
    assert names, "the registry is empty"
    assert names == sorted(set(names))
    for name in names:
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", name), f"{name!r} is not a lowercase snake_case name"
        assert layer_class(name) is type(build(name))


def test_every_name_is_an_exported_layer():
    exported = exported_layer_classes()
    for name in keras_norms.names():
        cls = layer_class(name)
        assert cls in exported, f"{name!r} maps to {cls}, which keras_norms.layers/activations/search do not export"


def test_every_exported_layer_has_a_name():
    registered = {layer_class(name) for name in keras_norms.names()}
    missing = sorted(c.__name__ for c in exported_layer_classes() - registered)
    assert not missing, f"exported layers without a name in keras_norms.registry: {missing}"


@pytest.mark.parametrize("name", keras_norms.names())
def test_every_name_builds_a_layer_that_runs_and_round_trips_its_config(name, rng):
    layer = build(name)
    x = (rng.standard_normal(SHAPE) * 1.5 + 0.3).astype("float32")
    layer(x, training=True)  # one training call: moving statistics move away from their initial values
    y = to_numpy(layer(x, training=False))
    assert y.shape == tuple(layer.compute_output_shape(SHAPE))
    assert np.all(np.isfinite(y)), f"{name}: non-finite output"

    config = layer.get_config()
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    for revived in (type(layer).from_config(config), keras.saving.deserialize_keras_object(serialized)):
        assert type(revived) is type(layer)
        assert revived.get_config() == config
        if not revived.built:  # deserialize_keras_object builds from the saved build config
            revived.build(SHAPE)
        for target, source in zip(revived.weights, layer.weights):
            target.assign(source.value)
        np.testing.assert_array_equal(to_numpy(revived(x, training=False)), y)


def test_get_passes_arguments_and_accepts_spelling_variants():
    layer = keras_norms.get("EvoNorm-S0", groups=4, epsilon=1e-3)
    assert type(layer) is layers.EvoNormS0
    assert (layer.groups, layer.epsilon) == (4, 1e-3)
    for name in keras_norms.names():
        for variant in (name.upper(), name.replace("_", "-"), name.title().replace("_", "-")):
            assert layer_class(variant) is layer_class(name)


def test_get_forwards_bad_arguments_to_the_layer():
    with pytest.raises(ValueError, match="groups"):
        keras_norms.get("evonorm_s0", groups=0)
    with pytest.raises(ValueError, match="no_such_argument"):
        keras_norms.get("rms_norm", no_such_argument=1)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown layer name") as error:
        keras_norms.get("evonorm_x9")
    assert "evonorm_x9" in str(error.value)
    for name in keras_norms.names():
        assert repr(name) in str(error.value)
    for bad in ("", "evonorm s0", "rms_norm_"):
        with pytest.raises(ValueError, match="Unknown layer name"):
            layer_class(bad)


@pytest.mark.parametrize("bad", [3, None, layers.RMSNormalization, ["rms_norm"]])
def test_a_name_that_is_not_a_string_raises_type_error(bad):
    with pytest.raises(TypeError, match="`name` must be a string"):
        keras_norms.get(bad)
