"""The shared statistics against numpy float64, masks and mixed precision included (tolerance 1e-5)."""

import keras
import numpy as np
import pytest

from keras_norms.ops import statistics


def to_numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype=np.float64)


@pytest.mark.parametrize("axes", [(0, 1), (1,), (0, 1, 2)])
def test_masked_moments_match_numpy(axes, rng):
    x = rng.standard_normal((3, 7, 4)) * 2 + 1
    mask = rng.random((3, 7)) > 0.4
    mask[:, 0] = True
    weights = statistics.mask_weights(mask, 2, "float32")
    mean, variance, count = statistics.masked_moments(keras.ops.convert_to_tensor(x, "float32"), axes, weights)
    full_weights = np.broadcast_to(mask[..., None], x.shape).astype(np.float64)
    want_count = full_weights.sum(axis=axes, keepdims=True)
    want_mean = (x * full_weights).sum(axis=axes, keepdims=True) / want_count
    want_variance = (full_weights * (x - want_mean) ** 2).sum(axis=axes, keepdims=True) / want_count
    np.testing.assert_allclose(to_numpy(mean), want_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_numpy(variance), want_variance, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(to_numpy(count), want_count)
    mean_square = statistics.masked_mean_square(keras.ops.convert_to_tensor(x, "float32"), axes, weights)
    want_mean_square = (full_weights * x**2).sum(axis=axes, keepdims=True) / want_count
    np.testing.assert_allclose(to_numpy(mean_square), want_mean_square, rtol=1e-5, atol=1e-5)


def test_unmasked_moments_match_numpy(rng):
    x = rng.standard_normal((2, 5, 6))
    mean, variance, count = statistics.masked_moments(keras.ops.convert_to_tensor(x, "float32"), (0, 1))
    np.testing.assert_allclose(to_numpy(mean), x.mean(axis=(0, 1), keepdims=True), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_numpy(variance), x.var(axis=(0, 1), keepdims=True), rtol=1e-5, atol=1e-5)
    assert float(to_numpy(count)) == 10


def test_fully_masked_reduction_gives_zero_not_nan():
    x = keras.ops.ones((2, 3, 4))
    weights = statistics.mask_weights(np.zeros((2, 3), bool), 2, "float32")
    mean, variance, _ = statistics.masked_moments(x, (1,), weights)
    np.testing.assert_array_equal(to_numpy(mean), 0.0)
    np.testing.assert_array_equal(to_numpy(variance), 0.0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_upcast_keeps_large_variance_of_half_precision_input(dtype):
    # ops.moments on half precision clips a variance of 1e6 to 65,536 on jax and tensorflow.
    x = keras.ops.cast(np.array([[-1000.0, 1000.0]] * 4), dtype)
    _, variance, _ = statistics.masked_moments(statistics.upcast(x), (0, 1))
    assert keras.backend.standardize_dtype(variance.dtype) == "float32"
    np.testing.assert_allclose(to_numpy(variance), 1e6, rtol=1e-2)


@pytest.mark.parametrize("channel_axis", [1, 3])
def test_split_groups_puts_channel_c_in_group_c_over_group_size(channel_axis):
    channels, groups = 6, 3
    shape = [2, 2, 2]
    shape.insert(channel_axis, channels)
    channel_index = np.arange(channels).reshape([channels if a == channel_axis else 1 for a in range(4)])
    x = np.broadcast_to(channel_index, shape).astype("float32")
    grouped = to_numpy(statistics.split_groups(keras.ops.convert_to_tensor(x), channel_axis, groups))
    # (groups, channels // groups): the channel ids each group holds.
    channels_of_group = np.moveaxis(grouped, (channel_axis, channel_axis + 1), (0, 1))[:, :, 0, 0, 0]
    np.testing.assert_array_equal(channels_of_group, np.arange(channels).reshape(groups, -1))
