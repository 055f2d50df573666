"""freeze_all_but_batchnorm and calibrate_batch_statistics.

See docs/references/normalization.md, sections 'alpha-BN' and 'Training BatchNorm only'.
"""

import os
import sys

import keras
import numpy as np
import pytest

from keras_norms.layers import AlphaBatchNormalization
from keras_norms.surgery import calibrate_batch_statistics, freeze_all_but_batchnorm
from tests.oracles import batch_norm as oracle

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

from resnet20 import resnet20  # noqa: E402


def cifar_resnet20():
    """examples/resnet20.py's ResNet-20, with BN gammas drawn from U(0, 1) so that they differ."""
    return resnet20(gamma_initializer=keras.initializers.RandomUniform(0.0, 1.0))


def test_resnet20_trains_exactly_its_batchnorm_affine(rng):
    model = cifar_resnet20()
    channels = sum(layer.gamma.shape[0] for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert channels == 784
    assert freeze_all_but_batchnorm(model) == 2 * 784 == 1568
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = {w.path: keras.ops.convert_to_numpy(w.value).copy() for w in model.weights}
    model.fit(rng.standard_normal((8, 32, 32, 3)), rng.integers(0, 10, 8), batch_size=8, epochs=1, verbose=0)
    for weight in model.weights:
        changed = not np.array_equal(keras.ops.convert_to_numpy(weight.value), before[weight.path])
        expected = weight.name in ("gamma", "beta", "moving_mean", "moving_variance")
        assert changed == expected, weight.path


def test_reaches_batchnorm_inside_blocks():
    class Block(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3, padding="same")
            self.norm = keras.layers.BatchNormalization()

        def call(self, x, training=None):
            return self.norm(self.conv(x), training=training)

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(Block()(inputs)))
    assert freeze_all_but_batchnorm(model) == 8
    with pytest.raises(ValueError, match="no BatchNormalization"):
        freeze_all_but_batchnorm(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))


@pytest.mark.parametrize("batch_size", [1, 2])
def test_calibrated_model_matches_the_formula(batch_size, rng):
    inputs = keras.Input((6, 6, 3))
    features = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(features)
    outputs = keras.layers.Dense(2, name="dense")(keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x)))
    model = keras.Model(inputs, outputs)
    bn = model.get_layer("bn")
    stats = [rng.uniform(0.5, 1.5, 4), rng.standard_normal(4), rng.standard_normal(4), rng.uniform(0.5, 2, 4)]
    bn.set_weights([s.astype("float32") for s in stats])  # gamma, beta, moving mean, moving variance
    x_test = rng.standard_normal((batch_size, 6, 6, 3)).astype("float32")
    calibrated, report = calibrate_batch_statistics(model, test_weight=0.1)
    assert [r["new"] for r in report] == ["AlphaBatchNormalization"]
    assert isinstance(model.get_layer("bn"), keras.layers.BatchNormalization)  # original untouched
    assert not isinstance(model.get_layer("bn"), AlphaBatchNormalization)
    conv = keras.ops.convert_to_numpy(keras.Model(inputs, features)(x_test)).astype(np.float64)
    gamma, beta, mean, variance = stats
    normalized = oracle.alpha_batch_norm(conv, mean, variance, gamma, beta, 0.1, bn.epsilon)
    kernel, bias = [w.astype(np.float64) for w in model.get_layer("dense").get_weights()]
    expected = np.maximum(normalized, 0).mean(axis=(1, 2)) @ kernel + bias
    np.testing.assert_allclose(keras.ops.convert_to_numpy(calibrated(x_test)), expected, atol=1e-5)
