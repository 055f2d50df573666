"""NormLinear, OrthoTransform and compute_orthotrans_basis (docs/references/layers.md, OLinear).

Tolerances: outputs 1e-5 (float32 vs float64); gradients 1e-4 relative to the largest entry;
the basis (numpy, float64) 1e-10.
"""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.layers import NormLinear, OrthoTransform, compute_orthotrans_basis
from keras_norms.testing import check_layer, vjp_numpy
from tests.oracles import catalog_layers as oracle
from tests.oracles.derivatives import complex_step_vjp


def random_orthogonal(size, rng):
    q, _ = np.linalg.qr(rng.standard_normal((size, size)))
    return q


@pytest.mark.parametrize("use_bias", [False, True])
def test_norm_linear_matches_oracle_with_gradients(use_bias, rng):
    x = rng.standard_normal((3, 4, 7)).astype("float32")
    upstream = rng.standard_normal((3, 4, 5)).astype("float32")
    layer = NormLinear(5, use_bias=use_bias, bias_initializer="random_normal")
    layer.build(x.shape)
    weights = [np.asarray(keras.ops.convert_to_numpy(w.value), np.float64) for w in layer.trainable_weights]
    outputs, dx, dweights = vjp_numpy(layer, x, upstream)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(outputs, oracle.norm_linear(x64, *weights), atol=1e-5)
    expected = complex_step_vjp(oracle.norm_linear, [x64, *weights], upstream)
    for got, want in zip([dx, *dweights], expected):
        np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())
    kernel = keras.ops.convert_to_numpy(layer.effective_kernel)
    np.testing.assert_allclose(kernel.sum(axis=0), np.ones(5), atol=1e-6)  # columns: convex weights
    assert np.all(kernel > 0)


@pytest.mark.parametrize("inverse", [False, True])
def test_ortho_transform_matches_oracle(inverse, rng):
    q = random_orthogonal(6, rng)
    x = rng.standard_normal((2, 6, 3)).astype("float32")  # transform axis 1
    layer = OrthoTransform(q, inverse=inverse, axis=1, offset_axes=(1, 2))
    layer.build(x.shape)
    offset = rng.standard_normal((6, 3))
    layer.offset.assign(offset.astype("float32"))
    moved = np.moveaxis(x.astype(np.float64), 1, -1)
    expected = np.moveaxis(moved @ (q if inverse else q.T), -1, 1) + offset
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, atol=1e-5)


def test_forward_then_inverse_is_identity(rng):
    q = random_orthogonal(8, rng)
    x = rng.standard_normal((4, 8)).astype("float32")
    forward = OrthoTransform(q, learn_offset=False)
    back = OrthoTransform(q, inverse=True, learn_offset=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(back(forward(x))), x, atol=1e-5)


def test_basis_is_the_reference_recipe(rng):
    n, channels, lag = 300, 3, 12
    t = np.arange(n)[:, None]
    series = np.sin(t / 7.0 + rng.uniform(0, 6, channels)) + 0.3 * rng.standard_normal((n, channels))
    series[:, 1] *= 5.0
    q = compute_orthotrans_basis(series, lag)
    # Independent recomputation: explicit covariance of the lag windows, column-wise /diag.
    windows = n - lag + 1
    averaged = np.zeros((lag, lag))
    for f in range(channels):
        lagged = np.array([series[i : i + windows, f] for i in range(lag)])
        centered = lagged - lagged.mean(axis=1, keepdims=True)
        covariance = centered @ centered.T / (windows - 1)
        averaged += covariance / np.diag(covariance)[None, :] / channels
    lower = np.tril(averaged) + np.tril(averaged, -1).T  # what eigh reads (UPLO='L')
    np.testing.assert_allclose(q @ q.T, np.eye(lag), atol=1e-10)
    diagonalized = q @ lower @ q.T
    eigenvalues = np.diag(diagonalized)
    np.testing.assert_allclose(diagonalized - np.diag(eigenvalues), 0, atol=1e-10)
    assert np.all(np.diff(eigenvalues) <= 1e-12)  # descending
    assert np.abs(averaged - averaged.T).max() > 0  # the /diag trick made it asymmetric


def test_basis_skips_flat_channels(rng):
    series = np.stack([rng.standard_normal(100), np.full(100, 3.0)], axis=1)
    np.testing.assert_allclose(
        compute_orthotrans_basis(series, 5), compute_orthotrans_basis(series[:, :1], 5), atol=1e-12
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: NormLinear(0), ValueError, "units"),
        (lambda: OrthoTransform(np.ones((3, 4))), ValueError, "basis"),
        (lambda: OrthoTransform(np.eye(3))(np.ones((2, 4), "float32")), ValueError, "basis size 3"),
        (lambda: compute_orthotrans_basis(np.ones((5, 2)), lag=8), ValueError, "lag=8"),
        (lambda: compute_orthotrans_basis(np.ones((50, 2)), lag=4), ValueError, "min_variance"),
    ],
)
def test_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_registered_by_name():
    assert isinstance(keras_norms.get("norm_linear", units=3), NormLinear)
    assert isinstance(keras_norms.get("ortho_transform", basis=np.eye(3)), OrthoTransform)


def test_norm_linear_checker(tmp_path, rng):
    check_layer(
        NormLinear,
        {"units": 5, "use_bias": True},
        (4, 6, 8),
        str(tmp_path),
        expected_num_trainable_weights=2,
        seed=int(rng.integers(2**31)),
    )


def test_ortho_transform_checker(tmp_path, rng):
    check_layer(
        OrthoTransform,
        {"basis": random_orthogonal(8, rng).tolist()},
        (4, 6, 8),
        str(tmp_path),
        expected_num_trainable_weights=1,
        expected_num_non_trainable_weights=1,
        unchanged_by_fit=("basis",),
        seed=int(rng.integers(2**31)),
    )
