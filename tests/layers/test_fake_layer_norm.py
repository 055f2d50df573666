"""FakeLayerNormalization (docs/references/normalization.md, section 'LayerNorm removal (FakeLN)').

Tolerances: outputs 1e-5 (float32 vs float64); the tracked sigma 1e-6 relative.
"""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.layers import FakeLayerNormalization
from keras_norms.testing import check_layer, vjp_numpy


def randomized(layer, shape, rng):
    layer.build(shape)
    gamma, beta = 1 + 0.3 * rng.standard_normal(shape[-1]), 0.3 * rng.standard_normal(shape[-1])
    layer.gamma.assign(gamma.astype("float32"))
    layer.beta.assign(beta.astype("float32"))
    return gamma, beta


def test_real_mode_is_layer_normalization(rng):
    x = (rng.standard_normal((3, 5, 8)) * 2 + 1).astype("float32")
    layer = FakeLayerNormalization()
    gamma, beta = randomized(layer, x.shape, rng)
    keras_ln = keras.layers.LayerNormalization(epsilon=1e-5)
    keras_ln.build(x.shape)
    keras_ln.set_weights([gamma.astype("float32"), beta.astype("float32")])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), keras.ops.convert_to_numpy(keras_ln(x)), atol=1e-5)


def test_fake_mode_divides_by_the_frozen_sigma(rng):
    x = (rng.standard_normal((3, 5, 8)) * 2 + 1).astype("float32")
    upstream = rng.standard_normal(x.shape).astype("float32")
    layer = FakeLayerNormalization(sigma=1.7, fake=True)
    gamma, beta = randomized(layer, x.shape, rng)
    x64 = x.astype(np.float64)
    expected = (x64 - x64.mean(-1, keepdims=True)) / 1.7 * gamma + beta
    outputs, dx, _ = vjp_numpy(layer, x, upstream)
    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    # Linear map: dx = C (upstream * gamma / sigma), with C the centering.
    g = upstream * gamma / 1.7
    np.testing.assert_allclose(dx, g - g.mean(-1, keepdims=True), atol=1e-5)
    assert float(keras.ops.convert_to_numpy(layer.sigma.value)) == pytest.approx(1.7)  # frozen in training
    assert all(w.name != "sigma" for w in layer.trainable_weights)


def test_sigma_tracks_the_token_std_while_real(rng):
    x = (rng.standard_normal((4, 6, 8)) * 3).astype("float32")
    layer = FakeLayerNormalization(momentum=0.9, sigma=1.0)
    layer(x, training=True)
    x64 = x.astype(np.float64)
    token_std = np.sqrt(x64.var(-1) + 1e-5).mean()
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(layer.sigma.value)), 0.9 + 0.1 * token_std, rtol=1e-6)
    layer(x, training=False)  # inference leaves it alone
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(layer.sigma.value)), 0.9 + 0.1 * token_std, rtol=1e-6)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="sigma"):
        FakeLayerNormalization(sigma=0.0)
    with pytest.raises(TypeError, match="fake"):
        FakeLayerNormalization(fake=1)


def test_registered_by_name():
    assert isinstance(keras_norms.get("fake_layer_norm"), FakeLayerNormalization)


def test_layer_checker(tmp_path, rng):
    check_layer(
        FakeLayerNormalization,
        {"sigma": 2.0},
        (4, 6, 8),
        str(tmp_path),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=2,
        unchanged_by_fit=("is_fake",),
        seed=int(rng.integers(2**31)),
    )


def test_sigma_leaves_padded_tokens_out_and_the_mask_passes_on(rng):
    x = (rng.standard_normal((3, 6, 8)) * 3).astype("float32")
    mask = rng.random((3, 6)) > 0.4
    mask[:, 0] = True
    x[~mask] *= 100.0  # padded tokens with a very different std
    layer = FakeLayerNormalization(momentum=0.5, sigma=1.0)
    gamma, beta = randomized(layer, x.shape, rng)
    outputs = keras.ops.convert_to_numpy(layer(x, training=True, mask=mask))
    x64 = x.astype(np.float64)
    token_std = np.sqrt(x64.var(-1) + 1e-5)
    expected_sigma = 0.5 + 0.5 * token_std[mask].mean()
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(layer.sigma.value)), expected_sigma, rtol=1e-6)
    # Per-token outputs do not depend on the mask (real mode: LayerNorm).
    expected = (x64 - x64.mean(-1, keepdims=True)) / token_std[..., None] * gamma + beta
    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    # The mask passes on to the next layer (through a model: the shared layer checker below).
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.compute_mask(x, mask)), mask)
