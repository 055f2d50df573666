"""Every fast path (keras_norms.backend) equals its reference op on fresh random inputs.

Outputs, the input gradient, every weight gradient and the state update, compiled (jax.jit, XLA,
torch.compile for one case), within 1e-5 of max(1, |reference|): measured about 3e-7 in float32.
Under mixed precision both paths compute in float32 inside; the same bound holds relative to the
float16 outputs' rounding (2**-10).

Where a backend has no fast path for an op (RMSNorm off torch), the layer takes the reference with
the switch on as with it off: the results must be identical, and match the float64 oracle.
"""

import keras
import numpy as np
import pytest

import keras_norms
from keras_norms import backend as fast_paths
from keras_norms.backend import fused
from keras_norms.kernels import OPS
from keras_norms.testing import vjp_function
from tests.oracles.derivatives import complex_step_vjp
from tests.oracles.rms import rms_norm

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
    _check_evonorm_batch_fast_path(keras_norms.layers.EvoNormB0, shape, axis, training, rng)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("layer_class", [keras_norms.layers.EvoNormB1, keras_norms.layers.EvoNormB2], ids=["b1", "b2"])
@pytest.mark.parametrize("shape, axis", [((4, 5, 6, 8), -1), ((4, 8, 5, 6), 1)], ids=["2d", "2d_channels_first"])
def test_evonorm_b1_b2_fast_paths_match_reference(layer_class, shape, axis, training, rng):
    _check_evonorm_batch_fast_path(layer_class, shape, axis, training, rng)


def _check_evonorm_batch_fast_path(layer_class, shape, axis, training, rng):
    # An offset, so that B1's and B2's `right` terms take both branches of the max.
    x = (rng.standard_normal(shape) * 2 + rng.standard_normal()).astype("float32")
    upstream = rng.standard_normal(shape).astype("float32")
    channels = shape[axis]
    # gamma, beta[, v], moving variance
    weights = [rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.5, channels)]
    if layer_class is keras_norms.layers.EvoNormB0:
        weights.append(rng.uniform(0.2, 1.5, channels))
    weights.append(rng.uniform(0.5, 2.0, channels))
    weights = [w.astype("float32") for w in weights]

    def factory():
        return layer_class(axis=axis, bessel_correction=True)

    # torch.compile is slow on CPU: one compiled torch case, eager for the rest.
    jit = keras.backend.backend() != "torch" or (
        shape == (4, 5, 6, 8) and training and layer_class.__name__ == "EvoNormB0"
    )
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


@pytest.mark.parametrize("warmup_steps", [0, 100], ids=["after_warmup", "in_warmup"])
@pytest.mark.parametrize(
    "shape, axis", [((4, 6, 8), -1), ((3, 8), -1), ((4, 8, 6), 1)], ids=["3d", "2d", "channels_first"]
)
def test_power_normalization_fast_path_matches_reference(shape, axis, warmup_steps, rng):
    """Outputs, the input gradient, the gradients of gamma, beta and the backward statistic and its
    loss scale (which `model.fit` writes into those variables), and the moving statistics."""
    x = (rng.standard_normal(shape) * 2 + 0.5).astype("float32")
    upstream = rng.standard_normal(shape).astype("float32")

    def factory():
        return keras_norms.layers.PowerNormalization(axis=axis, groups=2, warmup_steps=warmup_steps)

    layer = factory()
    layer.build(shape)
    assert fast_paths.get("power_normalization") is fused.power_normalization
    # Random values for every weight, the backward statistic and moving statistic included.
    weights = [rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) for w in layer.weights]
    _compare(
        _run(factory, shape, weights, x, upstream, True, True, jit=keras.backend.backend() != "torch"),
        _run(factory, shape, weights, x, upstream, True, False, jit=keras.backend.backend() != "torch"),
        TOLERANCE,
    )


def test_unless_predicate_and_applicability_send_calls_to_the_reference():
    # EvoNorm-S has a fast path on every backend; on torch it steps aside only while torch.compile
    # traces (Inductor fuses the reference better), so eagerly it is on everywhere.
    assert fast_paths.available("evonorm_s") == ["jax", "tensorflow", "torch"]
    assert fast_paths.get("evonorm_s") is fused.evonorm_s
    backend = keras.backend.backend()
    # A probe registered for this backend only, vetoed while `veto` says so. The registry has no
    # public removal; the name is unique to this test.
    name = "tests_backend_veto_probe"
    veto = {"on": True}

    @fast_paths.register(name, backends=(backend,), unless={backend: lambda: veto["on"]})
    def fast(x):
        return ("fast", x)

    @fast_paths.with_fast_path(name, applicable=lambda x: x >= 0)
    def op(x):
        return ("reference", x)

    assert fast_paths.available(name) == [backend]
    assert fast_paths.get(name) is None
    assert op(1) == ("reference", 1)
    veto["on"] = False
    assert fast_paths.get(name) is fast
    assert op(1) == ("fast", 1)
    assert op(-1) == ("reference", -1)  # not applicable to these arguments
    assert op.reference(1) == ("reference", 1)
    with fast_paths.fast_paths(False):
        assert fast_paths.get(name) is None
        assert op(1) == ("reference", 1)
    assert op(1) == ("fast", 1)


def test_kernels_come_first_where_they_apply_and_the_switches_turn_them_off():
    backend = keras.backend.backend()
    # A fast path and a kernel for a name unique to this test; the kernel "applies" to even inputs,
    # as a real one applies to CUDA tensors or a TPU backend.
    name = "tests_backend_kernel_probe"

    @fast_paths.register(name, backends=(backend,))
    def fast(x):
        return ("fast", x)

    # It covers arguments below 10 only (as a real one covers some layouts and dtypes).
    @fast_paths.register_kernel(name, backends=(backend,), applies=lambda x: x % 2 == 0, supports=lambda x: x < 10)
    def kernel(x):
        return ("kernel", x)

    @fast_paths.with_fast_path(name, applicable=lambda x: x >= 0)
    def op(x):
        return ("reference", x)

    assert fast_paths.kernels_available(name) == [backend]
    assert fast_paths.kernel_mode() == "auto"
    assert op(2) == ("kernel", 2)
    assert op(1) == ("fast", 1)  # the kernel does not apply: the graph-level fast path
    assert op(-2) == ("reference", -2)  # the op itself is not applicable: neither
    assert op(12) == ("fast", 12)  # on the device, but not covered
    with fast_paths.kernels("interpret"):  # every kernel, wherever the op and the kernel cover the arguments
        assert op(1) == ("kernel", 1)
        assert op(11) == ("fast", 11)
        assert op(-1) == ("reference", -1)
    with fast_paths.kernels("off"):
        assert op(2) == ("fast", 2)
    with fast_paths.fast_paths(False):  # the one switch turns kernels off too
        assert op(2) == ("reference", 2)
        assert fast_paths.get_kernel(name, 2) is None
    assert fast_paths.kernel_mode() == "auto"
    with pytest.raises(ValueError, match="'auto', 'interpret', 'off'.*mode='fast'"):
        fast_paths.set_kernel_mode("fast")


def test_kernels_exist_where_they_are_written_for():
    """Triton kernels on torch, Pallas kernels on JAX; TensorFlow's accelerated path is XLA.

    Only the current backend's kernel module is imported (the Triton one imports torch)."""
    expected = {"jax": ["jax"], "tensorflow": [], "torch": ["torch"]}[keras.backend.backend()]
    for name in OPS:
        assert name in fast_paths._names, name  # an op offers it (`with_fast_path`)
        assert fast_paths.kernels_available(name) == expected, name


def test_unknown_fast_path_name_raises():
    assert fast_paths.available("no_such_fast_path") == []
    with pytest.raises(ValueError, match="no_such_fast_path"):
        fast_paths.get("no_such_fast_path")


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
def test_rms_normalization_fast_path_matches_reference_and_oracle(shape, axis, dtype, rng):
    """torch's F.rms_norm path against the reference; jax and tensorflow have none (XLA fuses the
    reference), so there the layer runs the reference with the switch on or off: identical results.
    Every backend's results match the float64 oracle: outputs within 1e-5 (float32) or 4 units of
    float16 rounding, 4 * 2**-10 (input, weights and outputs each rounded once to float16), of
    max(1, |oracle|); in float32 the gradients within 1e-4 of the largest entry, as in
    tests/layers/test_rms_norm.py.
    """
    backend = keras.backend.backend()
    assert fast_paths.available("rms_normalization") == ["torch"]
    assert (fast_paths.get("rms_normalization") is not None) == (backend == "torch")
    x = (rng.standard_normal(shape) * 2 + 0.5).astype("float32")
    upstream = rng.standard_normal(shape).astype("float32")
    sizes = [shape[a] for a in ([axis] if isinstance(axis, int) else axis)]
    weights = [rng.uniform(0.5, 1.5, sizes).astype("float32"), rng.normal(0, 0.5, sizes).astype("float32")]

    def factory():
        return keras_norms.layers.RMSNormalization(axis=axis, dtype=dtype, center=True, zero_centered_gamma=True)

    fast = _run(factory, shape, weights, x, upstream, True, True, jit=False)
    reference = _run(factory, shape, weights, x, upstream, True, False, jit=False)
    if backend == "torch":
        _compare(fast, reference, TOLERANCE if dtype == "float32" else 2.0**-10)
    else:
        for got, expected in zip(fast, reference):
            np.testing.assert_array_equal(got, expected)

    axes = tuple(range(len(shape) - len(sizes), len(shape)))
    epsilon = factory().epsilon

    def oracle(x, gamma, beta):
        return rms_norm(x, axes, epsilon, gamma, beta, zero_centered_gamma=True)

    arrays = [x.astype("float64"), *(w.astype("float64") for w in weights)]
    expected = oracle(*arrays)
    scale = max(1.0, float(np.abs(expected).max()))
    output_tolerance = TOLERANCE if dtype == "float32" else 4 * 2.0**-10
    gradients = complex_step_vjp(oracle, arrays, upstream) if dtype == "float32" else []
    for results in (fast, reference):
        np.testing.assert_allclose(results[0], expected, rtol=0, atol=output_tolerance * scale)
        for got, want, name in zip(results[1:], gradients, ["x", "gamma", "beta"]):
            np.testing.assert_allclose(
                got, want, rtol=0, atol=1e-4 * np.abs(want).max(), err_msg=f"gradient with respect to {name}"
            )
