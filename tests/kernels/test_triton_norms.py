"""The Triton kernels (keras_norms.kernels.triton_norms) equal their reference ops, through Triton's interpreter.

Each kernel runs under `kernels("interpret")` on CPU tensors and is compared with the op's
undecorated reference (`op.reference`) on fresh random inputs: every output and returned
statistic, and the gradients with respect to every differentiable input, within
1e-5 * max(1, max|reference|) in float32 (measured: about 2e-6 at most). EvoNorm-B's batch
variance is returned without a gradient, as the layers stop it. Some cases shrink the module's
tiles (`streaming`) to reach the two-pass, chunked and split code paths with small inputs. Then
layers with kernels against layers without, in float32 and under mixed_bfloat16, and the
dispatch: a CPU tensor in "auto" mode never takes a kernel, arguments a kernel does not cover take
the op's other paths; and every kernel variant compiles for sm_90 (Triton and ptxas run without a GPU).

Torch only (tests/kernels/conftest.py): the interpreter is slow, so the shapes are small.
"""

import inspect
import platform
import sys

import keras
import numpy as np
import pytest
import torch

import keras_norms
from keras_norms import backend as dispatch
from keras_norms.kernels import OPS
from keras_norms.ops import evonorm as evonorm_ops
from keras_norms.ops import filter_response as frn_ops
from keras_norms.ops import power_norm as power_ops
from keras_norms.ops import rms as rms_ops
from keras_norms.testing import vjp_function

# `[dev]` installs Triton on Linux x86_64 (CI's platform): there a missing Triton fails the run
# instead of skipping it. Triton has no wheels elsewhere, so there the module skips.
TRITON_INSTALLED_BY_DEV = sys.platform == "linux" and platform.machine() == "x86_64"
if TRITON_INSTALLED_BY_DEV:
    import triton
    import triton.backends.nvidia  # noqa: F401  (the CUDA compiler the compile test uses)

    from keras_norms.kernels import triton_norms
else:
    triton = pytest.importorskip("triton", reason="Triton has no wheels for this platform")
    triton_norms = pytest.importorskip("keras_norms.kernels.triton_norms")

TOLERANCE = 1e-5
NAMES = OPS


@pytest.fixture
def launches(monkeypatch):
    """The names of the kernels launched during the test, in order."""
    launched = []
    launch = triton_norms._launch

    def counting(function, *args, **kwargs):
        launched.append(function.__name__)
        return launch(function, *args, **kwargs)

    monkeypatch.setattr(triton_norms, "_launch", counting)
    return launched


@pytest.fixture
def streaming(monkeypatch):
    """Tiles small enough that rows stream in chunks, no sample fits one tile, and positions split."""
    monkeypatch.setattr(triton_norms, "ROW_BLOCK_ELEMENTS", 8)
    monkeypatch.setattr(triton_norms, "ONE_PASS_ELEMENTS", 4)
    monkeypatch.setattr(triton_norms, "TILE_ELEMENTS", 16)
    monkeypatch.setattr(triton_norms, "INTERPRETER_PROGRAMS", 16)


def _tensor(rng, shape, scale=1.0, offset=0.0, low=None, high=None):
    if low is not None:
        return torch.tensor(rng.uniform(low, high, shape), dtype=torch.float32)
    return torch.tensor(rng.standard_normal(shape) * scale + offset, dtype=torch.float32)


def _leaves(values, differentiable):
    """Fresh copies of the tensor arguments; those named in `differentiable` require a gradient."""
    return {
        k: (v.detach().clone().requires_grad_(k in differentiable) if isinstance(v, torch.Tensor) else v)
        for k, v in values.items()
    }


def _flat(result):
    return list(result) if isinstance(result, tuple) else [result]


def _check(op, positional, keywords, differentiable, rng, tolerance=TOLERANCE):
    """Compares `op` under kernels("interpret") with `op.reference`; returns the largest differences
    (relative to max(1, |reference|)) of the outputs and of the gradients."""
    values = {**dict(enumerate(positional)), **keywords}

    def call(leaves, function):
        args = [leaves[i] for i in range(len(positional))]
        return _flat(function(*args, **{k: leaves[k] for k in keywords}))

    kernel_leaves, reference_leaves = _leaves(values, differentiable), _leaves(values, differentiable)
    with dispatch.kernels("interpret"):
        got = call(kernel_leaves, op)
    expected = call(reference_leaves, op.reference)
    assert len(got) == len(expected)
    output_error = 0.0
    for g, e in zip(got, expected):
        if e is None:
            assert g is None
            continue
        assert g.shape == e.shape and g.dtype == e.dtype
        output_error = max(output_error, _error(g, e))
    assert output_error <= tolerance, f"outputs differ by {output_error:.3g}"

    # Upstream gradients for the outputs the kernel differentiates (EvoNorm-B's s2_b: none).
    pairs = [(g, e) for g, e in zip(got, expected) if e is not None and g.requires_grad]
    upstreams = [torch.tensor(rng.standard_normal(tuple(e.shape)), dtype=e.dtype) for _, e in pairs]
    names = sorted(differentiable, key=str)
    got_grads = torch.autograd.grad([g for g, _ in pairs], [kernel_leaves[k] for k in names], upstreams)
    expected_grads = torch.autograd.grad([e for _, e in pairs], [reference_leaves[k] for k in names], upstreams)
    gradient_error = 0.0
    for name, g, e in zip(names, got_grads, expected_grads):
        assert g.shape == e.shape and g.dtype == e.dtype, name
        error = _error(g, e)
        assert error <= tolerance, f"gradient with respect to {name!r} differs by {error:.3g}"
        gradient_error = max(gradient_error, error)
    return output_error, gradient_error


def _error(got, expected):
    expected = expected.detach().double()
    return float((got.detach().double() - expected).abs().max()) / max(1.0, float(expected.abs().max()))


# --- RMSNorm and CRMSNorm ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, axis, gamma_shape",
    [
        ((2, 5, 6, 12), -1, (1, 1, 1, 12)),
        ((2, 5, 6, 12), [-2, -1], (1, 1, 6, 12)),
        ((2, 5, 6, 12), [-2, -1], (12,)),  # broadcast along a normalized axis: its gradient is summed
        ((1, 7, 5), -1, None),
    ],
    ids=["last", "last_two", "gamma_broadcast", "no_gamma_n1"],
)
def test_rms_normalization(shape, axis, gamma_shape, rng, launches):
    values = [_tensor(rng, shape, 2.0, 0.5), axis, 1e-6]
    differentiable = {0}
    if gamma_shape is not None:
        values.append(_tensor(rng, gamma_shape, low=0.5, high=1.5))
        differentiable.add(3)
    _check(rms_ops.rms_normalization, values, {}, differentiable, rng)
    assert launches == ["_rms_forward", "_rms_backward"]  # one pass each way


def test_rms_normalization_streams_long_rows(rng, launches, streaming):
    values = [_tensor(rng, (2, 3, 12), 2.0, 0.5), -1, 1e-6, _tensor(rng, (12,), low=0.5, high=1.5)]
    _check(rms_ops.rms_normalization, values, {}, {0, 3}, rng)
    assert launches == ["_rms_forward", "_rms_dots", "_rms_backward"]


def test_rms_normalization_reads_bfloat16(rng, launches):
    # The op upcasts: float32 output; the input's gradient is bfloat16 (one rounding).
    x = _tensor(rng, (2, 5, 12), 2.0, 0.5).to(torch.bfloat16)
    _check(rms_ops.rms_normalization, [x, -1, 1e-6, _tensor(rng, (12,), low=0.5, high=1.5)], {}, {0, 3}, rng, 2.0**-7)
    assert launches


@pytest.mark.parametrize(
    "shape, gamma_shape", [((2, 5, 6, 12), (12,)), ((3, 7), None), ((1, 4, 1), (1, 1, 1))], ids=["4d", "2d", "width_1"]
)
def test_crms_normalization(shape, gamma_shape, rng, launches):
    values = [_tensor(rng, shape, 2.0, 0.5), -1, 1e-6]
    differentiable = {0}
    if gamma_shape is not None:
        values.append(_tensor(rng, gamma_shape, low=0.5, high=1.5))
        differentiable.add(3)
    _check(rms_ops.crms_normalization, values, {}, differentiable, rng)
    assert launches == ["_rms_forward", "_rms_backward"]


def test_crms_normalization_streams_long_rows(rng, launches, streaming):
    values = [_tensor(rng, (3, 13), 2.0, 0.5), -1, 1e-6, _tensor(rng, (13,), low=0.5, high=1.5)]
    _check(rms_ops.crms_normalization, values, {}, {0, 3}, rng)
    assert "_rms_dots" in launches


# --- EvoNorm-B --------------------------------------------------------------------------------

LAYOUTS = [((2, 5, 6, 12), -1), ((2, 12, 5, 6), 1), ((1, 7, 5), -1), ((2, 3, 4, 5, 6), 1)]
LAYOUT_IDS = ["2d", "2d_channels_first", "1d_n1", "3d_channels_first"]


def _layout(shape, axis):
    rank = len(shape)
    channel_axis = axis % rank
    spatial_axes = tuple(a for a in range(1, rank) if a != channel_axis)
    parameter_shape = [1] * rank
    parameter_shape[channel_axis] = shape[channel_axis]
    return channel_axis, spatial_axes, tuple(parameter_shape)


def _evonorm_b_case(variant, shape, axis, training, rng):
    _, spatial_axes, parameter_shape = _layout(shape, axis)
    # An offset, so that B1's and B2's `right` terms take both branches of the max.
    x = _tensor(rng, shape, 2.0, float(rng.standard_normal()))
    positional, differentiable = [x], {0}
    if variant == "b0":
        positional.append(_tensor(rng, parameter_shape, low=0.2, high=1.5))
        differentiable.add(1)
    keywords = {
        "spatial_axes": spatial_axes,
        "epsilon": 1e-5,
        "moving_variance": None if training else _tensor(rng, parameter_shape, low=0.5, high=2.0),
    }
    op = getattr(evonorm_ops, f"evonorm_{variant}")
    return op, positional, keywords, differentiable


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("shape, axis", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("variant", ["b0", "b1", "b2"])
def test_evonorm_b(variant, shape, axis, training, rng, launches):
    _check(*_evonorm_b_case(variant, shape, axis, training, rng), rng)
    # moments, elementwise; sums, dx
    assert launches == ["_group_moments", "_evonorm_b_forward", "_evonorm_b_backward_sums", "_evonorm_b_backward"]


@pytest.mark.parametrize("shape, axis", LAYOUTS[:2], ids=LAYOUT_IDS[:2])
@pytest.mark.parametrize("variant", ["b0", "b1"])
def test_evonorm_b_streaming(variant, shape, axis, rng, launches, streaming):
    _check(*_evonorm_b_case(variant, shape, axis, True, rng), rng)
    assert len(launches) == 4


# --- EvoNorm-S and FRN ------------------------------------------------------------------------


def _evonorm_s_case(variant, shape, axis, groups, rng):
    channel_axis, _, parameter_shape = _layout(shape, axis)
    x = _tensor(rng, shape, 2.0, float(rng.standard_normal()))
    v = _tensor(rng, parameter_shape, low=0.2, high=1.5) if variant == "s0" else None
    keywords = {"channel_axis": channel_axis, "groups": groups, "epsilon": 1e-5, "centered": variant != "s2"}
    return evonorm_ops.evonorm_s, [x, v], keywords, {0, 1} if v is not None else {0}


@pytest.mark.parametrize(
    "variant, shape, axis, groups",
    [
        ("s0", (2, 5, 6, 12), -1, 4),  # 3 channels per group
        ("s0", (2, 12, 5, 6), 1, 12),  # one channel per group
        ("s0", (1, 7, 5), -1, 1),
        ("s1", (2, 3, 4, 5, 6), 1, 3),
        ("s1", (2, 5, 6, 12), -1, 6),
        ("s2", (2, 12, 5, 6), 1, 4),
        ("s2", (2, 3, 4, 5, 6), -1, 6),
    ],
    ids=["s0_2d_g4", "s0_2d_channels_first_g12", "s0_1d_n1_g1", "s1_3d_channels_first", "s1_2d", "s2_2d_cf", "s2_3d"],
)
def test_evonorm_s(variant, shape, axis, groups, rng, launches):
    _check(*_evonorm_s_case(variant, shape, axis, groups, rng), rng)
    assert launches == ["_sample_forward", "_sample_backward"]  # one program per sample's groups


@pytest.mark.parametrize(
    "variant, shape, axis, groups",
    [("s0", (2, 5, 6, 12), -1, 4), ("s1", (2, 12, 5, 6), 1, 12), ("s2", (2, 12, 5, 6), 1, 3)],
    ids=["s0_2d", "s1_2d_channels_first", "s2_2d_channels_first"],
)
def test_evonorm_s_streaming(variant, shape, axis, groups, rng, launches, streaming):
    _check(*_evonorm_s_case(variant, shape, axis, groups, rng), rng)
    assert launches == ["_group_moments", "_sample_forward", "_sample_backward", "_sample_backward"]


def _frn_case(shape, axis, learned, rng):
    _, spatial_axes, _ = _layout(shape, axis)
    x = _tensor(rng, shape, 2.0, 0.3)
    epsilon = torch.tensor(float(rng.uniform(0.1, 0.5))) if learned else 1e-6
    return frn_ops.frn, [x, epsilon], {"spatial_axes": spatial_axes}, {0, 1} if learned else {0}


@pytest.mark.parametrize("learned", [False, True], ids=["float_epsilon", "tensor_epsilon"])
@pytest.mark.parametrize("shape, axis", LAYOUTS, ids=LAYOUT_IDS)
def test_frn(shape, axis, learned, rng, launches):
    _check(*_frn_case(shape, axis, learned, rng), rng)
    assert launches == ["_sample_forward", "_sample_backward"]


@pytest.mark.parametrize("shape, axis", LAYOUTS[:2], ids=LAYOUT_IDS[:2])
def test_frn_streaming(shape, axis, rng, launches, streaming):
    _check(*_frn_case(shape, axis, True, rng), rng)
    assert len(launches) == 4


# --- PowerNorm --------------------------------------------------------------------------------


def _power_case(shape, axis, rng):
    channel_axis, _, parameter_shape = _layout(shape, axis) if len(shape) > 2 else (1, (), (1, shape[1]))
    reduce_axes = tuple(a for a in range(len(shape)) if a != channel_axis)
    xs = _tensor(rng, shape, 1.5, 0.2)
    quadratic_mean = torch.mean(xs**2, dim=reduce_axes, keepdim=True)
    normalizer = quadratic_mean * torch.tensor(rng.uniform(0.5, 2.0, parameter_shape), dtype=torch.float32)
    scaled_statistic = _tensor(rng, parameter_shape)
    statistic_scale = torch.tensor(float(rng.uniform(0.5, 4.0)))  # a loss scale
    positional = [xs, quadratic_mean, normalizer, scaled_statistic, statistic_scale]
    keywords = {"epsilon": 1e-5, "alpha_bkw": 0.9, "reduce_axes": reduce_axes}
    # quadratic_mean and normalizer get no gradient: none is asked for here (the reference stops them).
    return power_ops.power_normalization, positional, keywords, {0, 3, 4}


@pytest.mark.parametrize(
    "shape, axis", [((2, 5, 12), -1), ((2, 12, 5, 6), 1), ((3, 7), -1)], ids=["tokens", "2d_channels_first", "2d"]
)
def test_power_normalization(shape, axis, rng, launches):
    _check(*_power_case(shape, axis, rng), rng)
    assert launches == ["_scale_channels", "_power_backward"]  # one pass each way


def test_power_normalization_streaming(rng, launches, streaming):
    _check(*_power_case((2, 5, 12), -1, rng), rng)
    assert launches == ["_scale_channels", "_power_backward"]


# --- Layers -----------------------------------------------------------------------------------


def _run_layer(factory, shape, x, upstream, training, mode, weights=None):
    with dispatch.kernels(mode):
        layer = factory()
        layer.build(shape)
        for variable in layer.weights:
            if variable.trainable and weights is not None:
                variable.assign(weights(variable.shape))
        outputs, dx, dweights = vjp_function(layer, training=training)(x, upstream)
        results = [outputs, dx, *dweights, *[v.value for v in layer.non_trainable_variables]]
        return [np.asarray(keras.ops.convert_to_numpy(r), dtype="float64") for r in results]


LAYERS = [
    (lambda: keras_norms.layers.EvoNormB0(bessel_correction=True), (2, 5, 6, 12), True),
    (lambda: keras_norms.layers.EvoNormB0(axis=1), (2, 12, 5, 6), False),
    (lambda: keras_norms.layers.EvoNormB2(), (2, 5, 12), True),
    (lambda: keras_norms.layers.EvoNormS0(groups=4), (2, 5, 6, 12), True),
    (lambda: keras_norms.layers.EvoNormS1(axis=1, groups=12), (2, 12, 5, 6), True),
    (lambda: keras_norms.layers.FilterResponseNormalization(learned_epsilon=True), (2, 5, 6, 12), True),
    (lambda: keras_norms.layers.RMSNormalization(zero_centered_gamma=True), (2, 5, 12), True),
    (lambda: keras_norms.layers.CRMSNormalization(center=True), (2, 5, 12), True),
    (lambda: keras_norms.layers.PowerNormalization(), (2, 5, 12), True),
]
LAYER_IDS = ["b0", "b0_inference_channels_first", "b2", "s0", "s1_channels_first", "frn", "rms", "crms", "power"]


@pytest.mark.parametrize("factory, shape, training", LAYERS, ids=LAYER_IDS)
def test_layers_with_kernels_match_layers_without(factory, shape, training, rng, launches):
    x = _tensor(rng, shape, 2.0, float(rng.standard_normal())).numpy()
    upstream = rng.standard_normal(shape).astype("float32")
    # Trainable weights away from their initial values (gamma, beta, v, the learned epsilon, ...).
    seed = int(rng.integers(2**31))

    def weights(variable_shape):
        return np.random.default_rng(seed).uniform(0.3, 1.5, variable_shape).astype("float32")

    with_kernels = _run_layer(factory, shape, x, upstream, training, "interpret", weights)
    assert launches
    without = _run_layer(factory, shape, x, upstream, training, "off", weights)
    for got, expected in zip(with_kernels, without):
        assert float(np.abs(got - expected).max()) <= TOLERANCE * max(1.0, float(np.abs(expected).max()))


@pytest.mark.parametrize(
    "factory, shape",
    [
        (lambda: keras_norms.layers.EvoNormB0(), (2, 5, 6, 12)),
        (lambda: keras_norms.layers.RMSNormalization(), (2, 5, 12)),
    ],
    ids=["b0", "rms"],
)
def test_layers_under_mixed_bfloat16(factory, shape, rng, launches):
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        x = _tensor(rng, shape, 2.0, 0.3).numpy()
        upstream = rng.standard_normal(shape).astype("float32")
        with_kernels = _run_layer(factory, shape, x, upstream, True, "interpret")
        assert launches
        without = _run_layer(factory, shape, x, upstream, True, "off")
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    for got, expected in zip(with_kernels, without):
        # bfloat16 outputs and gradients: a rounding step of 2**-8, both ways
        assert float(np.abs(got - expected).max()) <= 2.0**-7 * max(1.0, float(np.abs(expected).max()))


# --- Dispatch ---------------------------------------------------------------------------------


def test_every_kernel_is_registered_for_torch():
    for name in NAMES:
        assert dispatch.kernels_available(name) == ["torch"], name


def test_a_cpu_tensor_in_auto_mode_takes_no_kernel(rng, launches):
    x = _tensor(rng, (2, 5, 12))
    assert dispatch.kernel_mode() == "auto"
    assert dispatch.get_kernel("rms_normalization", x, -1, 1e-6) is None
    assert dispatch.get_kernel("frn", x, 1e-6, spatial_axes=(1,)) is None
    assert dispatch.get_kernel("evonorm_b1", x, spatial_axes=(1,), epsilon=1e-5) is None
    assert rms_ops.rms_normalization(x, -1, 1e-6) is not None
    assert frn_ops.frn(x, 1e-6, spatial_axes=(1,)) is not None
    evonorm_ops.evonorm_s(x, None, channel_axis=2, groups=3, epsilon=1e-5)
    assert launches == []
    with dispatch.kernels("interpret"):
        assert dispatch.get_kernel("rms_normalization", x, -1, 1e-6) is triton_norms.rms_normalization
        rms_ops.rms_normalization(x, -1, 1e-6)
    assert launches == ["_rms_forward"]
    with dispatch.kernels("off"):
        assert dispatch.get_kernel("rms_normalization", x, -1, 1e-6) is None


def test_arguments_a_kernel_does_not_cover_take_the_other_paths(rng, launches):
    # float64; a channel axis neither last nor 1
    x64 = torch.tensor(rng.standard_normal((2, 5, 6)))
    x = _tensor(rng, (2, 5, 6, 4))
    with dispatch.kernels("interpret"):
        got = rms_ops.rms_normalization(x64, -1, 1e-6)
        evonorm_ops.evonorm_b1(x, spatial_axes=(1, 3), epsilon=1e-5)
        frn_ops.frn(x, 1e-6, spatial_axes=(1, 3))
        evonorm_ops.evonorm_s(x, None, channel_axis=2, groups=2, epsilon=1e-5)
    assert launches == []
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, rms_ops.rms_normalization.reference(x64, -1, 1e-6), rtol=1e-12, atol=1e-12)


# --- Compilation for CUDA (no GPU needed) -----------------------------------------------------

# Every branch of every kernel's compile-time constants at least once (the interpreter above runs
# Python, not the compiler): a kernel that interprets but does not compile fails here.
VARIANTS = [
    ("_rms_forward", "*bf16", dict(BLOCK_R=4, BLOCK_D=256, ONE_BLOCK=True, HAS_GAMMA=True, COMPRESSED=False)),
    ("_rms_forward", "*fp32", dict(BLOCK_R=1, BLOCK_D=1024, ONE_BLOCK=False, HAS_GAMMA=False, COMPRESSED=True)),
    ("_rms_dots", "*fp16", dict(BLOCK_D=1024, HAS_GAMMA=True)),
    ("_rms_backward", "*bf16", dict(BLOCK_R=4, BLOCK_D=256, ONE_BLOCK=True, HAS_GAMMA=True, COMPRESSED=False)),
    ("_rms_backward", "*fp32", dict(BLOCK_R=1, BLOCK_D=1024, ONE_BLOCK=False, HAS_GAMMA=False, COMPRESSED=True)),
    ("_group_moments", "*fp32", dict(BLOCK_P=64, PER_BLOCK=4, BLOCK_G=4)),
    ("_sample_forward", "*fp32", dict(BLOCK_P=64, PER_BLOCK=4, BLOCK_G=4, ONE_PASS=True, CENTERED=True, GATE=2)),
    ("_sample_forward", "*fp32", dict(BLOCK_P=64, PER_BLOCK=8, BLOCK_G=1, ONE_PASS=True, CENTERED=False, GATE=0)),
    ("_sample_forward", "*fp32", dict(BLOCK_P=64, PER_BLOCK=4, BLOCK_G=2, ONE_PASS=False, CENTERED=True, GATE=1)),
    ("_sample_backward", "*fp32", dict(BLOCK_P=64, PER_BLOCK=4, BLOCK_G=4, PHASE=0, GATE=2)),
    ("_sample_backward", "*fp32", dict(BLOCK_P=64, PER_BLOCK=8, BLOCK_G=1, PHASE=1, GATE=0)),
    ("_sample_backward", "*fp32", dict(BLOCK_P=64, PER_BLOCK=4, BLOCK_G=2, PHASE=2, GATE=1)),
    ("_sample_backward", "*fp32", dict(BLOCK_P=64, PER_BLOCK=4, BLOCK_G=2, PHASE=1, GATE=2)),
    *[
        (name, "*fp32", dict(BLOCK_P=64, BLOCK_C=64, VARIANT=variant))
        for name in ("_evonorm_b_forward", "_evonorm_b_backward_sums", "_evonorm_b_backward")
        for variant in (0, 1, 2)
    ],
    ("_scale_channels", "*fp32", dict(BLOCK_P=64, BLOCK_C=64)),
    ("_power_backward", "*fp32", dict(BLOCK_P=64, BLOCK_C=64)),
]


def test_every_kernel_compiles_for_cuda(monkeypatch, tmp_path):
    """Triton's compiler and ptxas run on a CPU: sm_90 binaries of every variant."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TRITON_DEFAULT_FP_FUSION", "1")  # the default; silences its warning
    kernels = {name for name, _, _ in VARIANTS}
    assert kernels == {name for name in vars(triton_norms) if name.startswith("_") and _is_kernel(name)}
    for name, pointer, constants in VARIANTS:
        function = getattr(triton_norms, name)
        signature = {}
        for parameter in inspect.signature(function).parameters:
            if parameter in constants:
                signature[parameter] = "constexpr"
            elif parameter.isupper():  # a tensor; the large ones in `pointer`'s dtype
                signature[parameter] = pointer if parameter in ("X", "DY", "DX") else "*fp32"
            else:
                signature[parameter] = "fp32" if parameter in ("epsilon", "inv_count") else "i32"
        source = ASTSource(triton.jit(function), signature=signature, constexprs=constants)
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32))
        assert compiled.asm["cubin"], name


def _is_kernel(name):
    function = getattr(triton_norms, name)
    return (
        inspect.isfunction(function)
        and function.__module__ == triton_norms.__name__
        and any(p.annotation is not inspect.Parameter.empty for p in inspect.signature(function).parameters.values())
    )
