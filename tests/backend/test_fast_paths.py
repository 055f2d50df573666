"""Every fast path (keras_norms.backend) equals its reference op on fresh random inputs.

Outputs, the input gradient, every weight gradient and the state update, compiled (jax.jit, XLA,
torch.compile for one case), within 1e-5 of max(1, |reference|): measured about 3e-7 in float32.
Under mixed precision both paths compute in float32 inside; the same bound holds relative to the
float16 outputs' rounding (2**-10).
"""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms import backend as fast_paths
from keras_norms.backend import fused
from keras_norms.testing import vjp_function

TOLERANCE = 1e-5


def _run(layer_factory, shape, weights, x, upstream, training, fast, jit=True, mask=None):
    with fast_paths.fast_paths(fast):
        layer = layer_factory()
        layer.build(shape)
        for variable, value in zip(layer.weights, weights):
            variable.assign(value)
        outputs, dx, dweights = vjp_function(layer, training=training, jit=jit, mask=mask)(x, upstream)
        results = [outputs, dx, *dweights, *[v.value for v in layer.non_trainable_variables]]
        return [np.asarray(keras.ops.convert_to_numpy(r), dtype="float64") for r in results]


def _compare(fast, reference, tolerance):
    for got, expected in zip(fast, reference):
        scale = max(1.0, float(np.abs(expected).max()))
        assert float(np.abs(got - expected).max()) <= tolerance * scale


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize(
    "shape, axis",
    [((4, 5, 6, 8), -1), ((4, 8, 5, 6), 1), ((3, 7, 8), -1), ((2, 3, 4, 5, 6), -1)],
    ids=["2d", "2d_channels_first", "1d", "3d"],
)
def test_evonorm_b0_fast_path_matches_reference(shape, axis, training, rng):
    x = (rng.standard_normal(shape) * 2 + rng.standard_normal()).astype("float32")
    upstream = rng.standard_normal(shape).astype("float32")
    channels = shape[axis]
    # gamma, beta, v, moving variance
    weights = [
        rng.uniform(0.5, 1.5, channels),
        rng.normal(0, 0.5, channels),
        rng.uniform(0.2, 1.5, channels),
        rng.uniform(0.5, 2.0, channels),
    ]
    weights = [w.astype("float32") for w in weights]

    def factory():
        return keras_norms.layers.EvoNormB0(axis=axis, bessel_correction=True)

    # torch.compile is slow on CPU: one compiled torch case, eager for the rest.
    jit = keras.backend.backend() != "torch" or (shape == (4, 5, 6, 8) and training)
    _compare(
        _run(factory, shape, weights, x, upstream, training, True, jit),
        _run(factory, shape, weights, x, upstream, training, False, jit),
        TOLERANCE,
    )


def test_evonorm_b0_fast_path_under_mixed_precision(rng):
    shape = (4, 5, 6, 8)
    x = rng.standard_normal(shape).astype("float32")
    upstream = rng.standard_normal(shape).astype("float32")
    weights = [
        np.ones(8, "float32"),
        np.zeros(8, "float32"),
        rng.uniform(0.2, 1.5, 8).astype("float32"),
        np.ones(8, "float32"),
    ]

    def factory():
        return keras_norms.layers.EvoNormB0(dtype="mixed_float16")

    jit = keras.backend.backend() != "torch"
    fast = _run(factory, shape, weights, x, upstream, True, True, jit)
    reference = _run(factory, shape, weights, x, upstream, True, False, jit)
    _compare(fast, reference, 2.0**-10)  # float16 outputs: one rounding step


@pytest.mark.parametrize(
    "layer_class, shape, axis",
    [
        (keras_norms.layers.EvoNormS0, (4, 5, 6, 8), -1),
        (keras_norms.layers.EvoNormS0, (4, 8, 5, 6), 1),
        (keras_norms.layers.EvoNormS0, (3, 7, 8), -1),
        (keras_norms.layers.EvoNormS0, (2, 3, 4, 5, 8), -1),
        (keras_norms.layers.EvoNormS1, (4, 5, 6, 8), -1),
        (keras_norms.layers.EvoNormS2, (4, 8, 5, 6), 1),
    ],
    ids=["s0_2d", "s0_2d_channels_first", "s0_1d", "s0_3d", "s1_2d", "s2_2d_channels_first"],
)
def test_evonorm_s_fast_path_matches_reference(layer_class, shape, axis, rng):
    x = (rng.standard_normal(shape) * 2 + rng.standard_normal()).astype("float32")
    upstream = rng.standard_normal(shape).astype("float32")
    channels = shape[axis]

    def factory():
        return layer_class(axis=axis, groups=4)

    layer = factory()
    layer.build(shape)
    # gamma, beta[, v]
    weights = [rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.5, channels), rng.uniform(0.2, 1.5, channels)]
    weights = [w.astype("float32") for w in weights[: len(layer.weights)]]
    jit = keras.backend.backend() != "torch"  # under torch.compile the layer takes the reference
    _compare(
        _run(factory, shape, weights, x, upstream, True, True, jit),
        _run(factory, shape, weights, x, upstream, True, False, jit),
        TOLERANCE,
    )


def test_evonorm_s0_fast_path_under_mixed_precision(rng):
    shape = (4, 5, 6, 8)
    x = rng.standard_normal(shape).astype("float32")
    upstream = rng.standard_normal(shape).astype("float32")
    weights = [
        rng.uniform(0.5, 1.5, 8).astype("float32"),
        np.zeros(8, "float32"),
        rng.uniform(0.2, 1.5, 8).astype("float32"),
    ]

    def factory():
        return keras_norms.layers.EvoNormS0(groups=4, dtype="mixed_float16")

    jit = keras.backend.backend() != "torch"
    fast = _run(factory, shape, weights, x, upstream, True, True, jit)
    reference = _run(factory, shape, weights, x, upstream, True, False, jit)
    _compare(fast, reference, 2.0**-10)  # float16 outputs: one rounding step


def test_unless_predicate_sends_calls_to_the_reference():
    assert fast_paths.available("evonorm_s") == ["jax", "tensorflow", "torch"]
    backend = keras.backend.backend()
    # EvoNorm-S on torch steps aside while torch.compile traces (Inductor fuses the reference better).
    assert set(fast_paths._conditions) == {("evonorm_s", "torch")}
    fast_paths.register("test_only", backends=(backend,), unless={backend: lambda: True})(len)
    try:
        assert fast_paths.get("test_only") is None
        fast_paths._conditions[("test_only", backend)] = lambda: False
        assert fast_paths.get("test_only") is len
    finally:
        del fast_paths._registry[("test_only", backend)], fast_paths._conditions[("test_only", backend)]


def test_masked_and_switched_off_calls_use_the_reference(rng):
    assert fast_paths.get("evonorm_b0") is fused.evonorm_b0
    assert fast_paths.available("evonorm_b0") == ["jax", "tensorflow", "torch"]
    with fast_paths.fast_paths(False):
        assert fast_paths.get("evonorm_b0") is None
    assert fast_paths.fast_paths_enabled()
    with pytest.raises(TypeError, match="enabled"):
        fast_paths.set_fast_paths("no")
    # A mask goes to the reference whatever the switch says: identical results.
    shape = (3, 6, 8)
    x = rng.standard_normal(shape).astype("float32")
    mask = np.ones(shape[:-1], bool)
    mask[0, 4:] = False
    weights = [np.ones(8, "float32"), np.zeros(8, "float32"), np.ones(8, "float32"), np.ones(8, "float32")]
    factory = keras_norms.layers.EvoNormB0
    on = _run(factory, shape, weights, x, x, True, True, jit=False, mask=mask)
    off = _run(factory, shape, weights, x, x, True, False, jit=False, mask=mask)
    for a, b in zip(on, off):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape, axis", [((3, 7, 16), -1), ((2, 3, 4, 6), [-2, -1])], ids=["last", "last_two"])
@pytest.mark.parametrize("dtype", ["float32", "mixed_float16"])
def test_rms_normalization_fast_path_matches_reference(shape, axis, dtype, rng):
    """torch's F.rms_norm path; jax and tensorflow have none (XLA fuses the reference)."""
    if keras.backend.backend() != "torch":
        assert fast_paths.get("rms_normalization") is None
        return
    x = (rng.standard_normal(shape) * 2 + 0.5).astype("float32")
    upstream = rng.standard_normal(shape).astype("float32")
    sizes = [shape[a] for a in ([axis] if isinstance(axis, int) else axis)]
    weights = [rng.uniform(0.5, 1.5, sizes).astype("float32"), rng.normal(0, 0.5, sizes).astype("float32")]

    def factory():
        return keras_norms.layers.RMSNormalization(axis=axis, dtype=dtype, center=True, zero_centered_gamma=True)

    tolerance = TOLERANCE if dtype == "float32" else 2.0**-10
    _compare(
        _run(factory, shape, weights, x, upstream, True, True, jit=False),
        _run(factory, shape, weights, x, upstream, True, False, jit=False),
        tolerance,
    )
    assert fast_paths.available("rms_normalization") == ["torch"]
