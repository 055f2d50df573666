"""replace_norm_layers on keras.applications, keras-hub and keras-cv backbones (random init, offline).

Counts are exact: every BatchNormalization replaced (nested ones included), the stated number of
BN+activation pairs fused; the swapped model trains one step and every used replacement learns.
Exactness of the rewrite itself: BN -> AlphaBatchNormalization(test_weight=0) with the BN's weights
must give the original inference outputs (1e-5), nested blocks included.
"""

import keras
import numpy as np
import pytest

from keras_norms.keras_internals import nested_layers
from keras_norms.layers import EvoNormS0
from keras_norms.surgery import calibrate_batch_statistics, replace_norm_layers
from keras_norms.testing import vjp_function
from tests.surgery import backbones

CASES = [
    # (source, name, BN layers, nested, fused)
    ("applications", "resnet50", 53, 0, 33),
    ("applications", "mobilenet_v3_small", 34, 0, 23),
    ("applications", "efficientnet_v2_b0", 59, 0, 39),
    ("keras_hub", "resnet", 6, 0, 3),
    ("keras_hub", "mobilenet", 13, 12, 1),
    ("keras_hub", "efficientnet", 7, 5, 2),
    ("keras_cv", "resnet", 6, 0, 3),
    ("keras_cv", "mobilenet_v3", 7, 0, 0),
    ("keras_cv", "efficientnet_v2", 8, 6, 2),
]
BUILDERS = {
    "applications": backbones.applications,
    "keras_hub": backbones.keras_hub_backbone,
    "keras_cv": backbones.keras_cv_backbone,
}


def batch_norms(model):
    return [layer for layer in nested_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


def with_head(model):
    features = model.output
    if len(features.shape) == 4:
        features = keras.layers.GlobalAveragePooling2D()(features)
    return keras.Model(model.input, keras.layers.Dense(3)(keras.layers.Flatten()(features)))


@pytest.mark.parametrize("source, name, total, nested, fused", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_every_batchnorm_is_replaced_and_the_model_trains(source, name, total, nested, fused, rng):
    model = BUILDERS[source](name)
    assert len(batch_norms(model)) == total
    swapped, report = replace_norm_layers(model, "evonorm_s0", groups=8)
    assert len(report) == total
    assert sum(r["nested"] for r in report) == nested
    assert sum(r["fused"] for r in report) == fused
    assert not batch_norms(swapped)
    assert len(batch_norms(model)) == total  # the original is untouched
    evonorms = [layer for layer in nested_layers(swapped) if isinstance(layer, EvoNormS0)]
    assert len(evonorms) == total
    trainer = with_head(swapped)
    for layer in nested_layers(trainer):
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0  # stochastic depth can drop a whole block for a batch of 2
    x = rng.standard_normal((2, *backbones.IMAGE)).astype("float32")
    # Every replacement the model calls gets a gradient (exact check: a one-step weight change
    # can round away when a gradient is below 1e-7).
    upstream = rng.standard_normal((2, 3)).astype("float32")
    # jax runs un-jitted grads op by op (minutes for ResNet50); compile it there.
    jit = keras.backend.backend() == "jax"
    _, _, gradients = vjp_function(trainer, jit=jit)(
        keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(upstream)
    )
    gradients = [keras.ops.convert_to_numpy(g) for g in gradients]
    by_path = {v.path: g for v, g in zip(trainer.trainable_variables, gradients)}
    for layer in evonorms:
        if layer.built:
            assert np.any(by_path[layer.gamma.path] != 0), layer.name
    trainer.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = trainer.fit(x, np.array([0, 1]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize(
    "source, name", [("keras_hub", "mobilenet"), ("keras_hub", "efficientnet"), ("keras_cv", "efficientnet_v2")]
)
def test_rewrite_is_exact_for_an_equivalent_layer(source, name, rng):
    model = BUILDERS[source](name)
    for layer in batch_norms(model):  # non-trivial statistics
        if layer.built:
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.standard_normal(channels).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels).astype("float32"))
    x = rng.standard_normal((2, *backbones.IMAGE)).astype("float32")
    calibrated, report = calibrate_batch_statistics(model, test_weight=0.0)
    assert len(report) == len(batch_norms(model))
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    got = keras.ops.convert_to_numpy(calibrated(x, training=False))
    np.testing.assert_allclose(got, expected, atol=1e-5 * max(1.0, np.abs(expected).max()))


def test_groups_fall_back_to_a_divisor_and_are_reported():
    model = backbones.applications("mobilenet_v3_small")
    _, report = replace_norm_layers(model, "evonorm_s0", groups=32)
    by_channels = {r["groups"] for r in report}
    assert 32 not in by_channels or len(by_channels) > 1  # 16, 24, 40... channels need smaller groups
    assert all(r["groups"] <= 32 for r in report)


def test_non_fused_target_and_bad_target():
    model = backbones.keras_cv_backbone("resnet")
    swapped, report = replace_norm_layers(model, "alpha_batch_norm", test_weight=0.5)
    assert len(report) == 6 and not any(r["fused"] for r in report)
    with pytest.raises(ValueError, match="evonorm_x9"):
        replace_norm_layers(model, "evonorm_x9")
    with pytest.raises(TypeError, match="target"):
        replace_norm_layers(model, 3)
