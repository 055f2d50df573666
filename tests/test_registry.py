"""Layers by name."""

import keras
import pytest

import keras_norms
from keras_norms import activations, layers

# Constructor arguments without defaults.
REQUIRED_ARGUMENTS = {
    "afkan_dense": {"units": 3},
    "cosine_classifier": {"num_classes": 3},
    "hermite_activation": {"coefficients": [0.0, 1.0]},
    "norm_linear": {"units": 3},
    "ortho_transform": {"basis": [[1.0, 0.0], [0.0, 1.0]]},
    "snnk_dense": {"units": 3, "num_random_features": 8},
}


def build(name):
    return keras_norms.get(name, **REQUIRED_ARGUMENTS.get(name, {}))


@pytest.mark.parametrize(
    "name, cls",
    [
        ("afkan_dense", layers.AFKANDense),
        ("alpha_batch_norm", layers.AlphaBatchNormalization),
        ("cosine_classifier", layers.CosineClassifier),
        ("crrelu", activations.CRReLU),
        ("hermite_activation", activations.HermiteActivation),
        ("interpolated_activation", activations.InterpolatedActivation),
        ("evonorm_b0", layers.EvoNormB0),
        ("evonorm_b1", layers.EvoNormB1),
        ("evonorm_b2", layers.EvoNormB2),
        ("evonorm_s0", layers.EvoNormS0),
        ("evonorm_s1", layers.EvoNormS1),
        ("evonorm_s2", layers.EvoNormS2),
        ("evonorm_s0a", layers.EvoNormS0a),
        ("evonorm_s1a", layers.EvoNormS1a),
        ("evonorm_s2a", layers.EvoNormS2a),
        ("fake_layer_norm", layers.FakeLayerNormalization),
        ("l2_normalize", layers.L2Normalize),
        ("norm_linear", layers.NormLinear),
        ("ortho_transform", layers.OrthoTransform),
        ("power_norm", layers.PowerNormalization),
        ("rms_norm", layers.RMSNormalization),
        ("crms_norm", layers.CRMSNormalization),
        ("snnk_dense", layers.SNNKDense),
        ("temp_net", layers.TempNet),
    ],
)
def test_every_name_builds_its_class(name, cls):
    assert type(build(name)) is cls
    assert name in keras_norms.names()


def test_names_cover_every_exported_layer():
    built = {type(build(name)) for name in keras_norms.names()}
    exported = [getattr(layers, n) for n in layers.__all__]
    exported += [getattr(activations, n) for n in activations.__all__]
    exported_layers = {c for c in exported if isinstance(c, type) and issubclass(c, keras.layers.Layer)}
    assert built == exported_layers


def test_get_passes_arguments_and_accepts_spelling_variants():
    layer = keras_norms.get("EvoNorm-S0", groups=4, epsilon=1e-3)
    assert (layer.groups, layer.epsilon) == (4, 1e-3)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="evonorm_s0"):
        keras_norms.get("evonorm_x9")
    with pytest.raises(TypeError, match="name"):
        keras_norms.get(3)
