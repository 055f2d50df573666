"""SNNKDense against a float64 oracle of the reference's NNK_Relu (docs/references/layers.md, section 'SNNK').

Tolerances: outputs 1e-5 relative to the largest entry; psi's init 1e-6; the kernel estimate is
statistical: within 4 standard errors of the arc-cosine closed form.
"""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms.layers import SNNKDense
from keras_norms.layers.random_features import gaussian_projection
from keras_norms.testing import check_layer
from tests.oracles import catalog_layers as oracle


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x), np.float64)


@pytest.mark.parametrize("floor", [0.0, -0.2])
@pytest.mark.parametrize("orthogonal", [False, True])
def test_matches_oracle_and_initializes_psi_from_the_kernel(floor, orthogonal, rng):
    kernel = rng.standard_normal((6, 4))
    x = rng.standard_normal((5, 6)).astype("float32")
    layer = SNNKDense(4, 16, relu_floor=floor, orthogonal=orthogonal, seed=3, init_from_kernel=kernel)
    y = to_numpy(layer(x))
    projection = to_numpy(layer.projection.value)
    np.testing.assert_allclose(projection, gaussian_projection(16, 6, orthogonal, 3), atol=1e-6)
    psi = oracle.relu_features(kernel.T, projection, floor)
    np.testing.assert_allclose(to_numpy(layer.psi.value), psi, atol=1e-6)
    expected = oracle.relu_features(x.astype(np.float64), projection, floor) @ psi.T
    np.testing.assert_allclose(y, expected, atol=1e-5 * np.abs(expected).max())


def test_orthogonal_projection_blocks_are_orthogonal():
    g = gaussian_projection(10, 4, True, seed=0)
    for block in (g[:4], g[4:8]):
        gram = block @ block.T
        np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-10)


def test_estimates_the_arc_cosine_kernel(rng):
    x, w = rng.standard_normal(5), rng.standard_normal(5)
    m = 20000
    layer = SNNKDense(1, m, seed=int(rng.integers(2**31)), init_from_kernel=w[:, None])
    estimate = float(to_numpy(layer(x[None].astype("float32")))[0, 0])
    theta = np.arccos(np.clip(x @ w / np.linalg.norm(x) / np.linalg.norm(w), -1, 1))
    exact = np.linalg.norm(x) * np.linalg.norm(w) * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi)
    samples = np.maximum(gaussian_projection(m, 5, False, 0) @ np.stack([x, w], 1), 0).prod(1)
    assert abs(estimate - exact) < 4 * samples.std() / np.sqrt(m)


def test_same_seed_same_layer():
    a, b = SNNKDense(3, 8, seed=5), SNNKDense(3, 8, seed=5)
    x = np.ones((2, 4), "float32")
    np.testing.assert_array_equal(to_numpy(a(x)), to_numpy(b(x)))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: SNNKDense(3, 0), ValueError, "num_random_features"),
        (lambda: SNNKDense(3, 8, init_from_kernel=np.ones((4, 2))), ValueError, "init_from_kernel"),
        (
            lambda: SNNKDense(3, 8, init_from_kernel=np.ones((4, 3)))(np.ones((2, 5), "float32")),
            ValueError,
            "input rows",
        ),
        (lambda: SNNKDense(3, 8, orthogonal="yes"), TypeError, "orthogonal"),
    ],
)
def test_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_registered_by_name():
    assert isinstance(keras_norms.get("snnk_dense", units=3, num_random_features=8), SNNKDense)


def test_layer_checker(tmp_path, rng):
    check_layer(
        SNNKDense,
        {"units": 5, "num_random_features": 32, "seed": 1, "use_bias": True},
        (4, 6, 8),
        str(tmp_path),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=1,
        unchanged_by_fit=("projection",),
        seed=int(rng.integers(2**31)),
    )
