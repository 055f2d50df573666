"""The Pallas kernels (keras_norms/kernels/pallas_norms.py) equal their reference ops (JAX only).

Each kernel runs through Pallas' interpreter (`kernels("interpret")`) in both of its tilings: the
TPU one (exact blocks) and the GPU one (power-of-two blocks, masked loads and stores), and is
compared with the undecorated op (`op.reference`, differentiated by JAX) on fresh random inputs:
outputs, every returned statistic and the gradient with respect to every differentiable input,
within 1e-5 of max(1, |reference|). Shrunken tile budgets force several tiles and edge tiles.
Layers compare `kernels("interpret")` with `kernels("off")` (float32 and mixed_bfloat16, 2**-7);
in "auto" mode a CPU array never takes a kernel; and every kernel's forward and backward lowers
with `jax.export` for TPU (Mosaic) and CUDA (Triton), which needs no device.
"""

import types

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from jax import export

import keras_norms
from keras_norms import backend as fast_paths
from keras_norms import ops as norm_ops
from keras_norms.kernels import OPS, pallas_norms
from keras_norms.testing import vjp_function

TOLERANCE = 1e-5
NAMES = OPS


LAYOUTS = ("tpu", "gpu")


@pytest.fixture
def layout(request, monkeypatch):
    """The tiling the interpreter runs: "tpu" (exact blocks) or "gpu" (power-of-two, masked);
    parametrized indirectly by each test."""
    monkeypatch.setattr(pallas_norms, "_INTERPRET_LAYOUT", request.param)
    return request.param


def _rotated(cases, variants, step=1):
    """`(case..., variant, layout)` for every case in both layouts, the variant rotating (`step`
    apart between the layouts) so that each variant meets several cases without the full product
    (the interpreter's compilations dominate the module's time)."""
    return [
        pytest.param(*case, variants[(i + step * j) % len(variants)], layout, id=f"{name}-{layout}")
        for i, (name, case) in enumerate(cases)
        for j, layout in enumerate(LAYOUTS)
    ]


@pytest.fixture
def small_tiles(monkeypatch):
    """Budgets small enough that the test shapes take several tiles, the last one partial."""
    monkeypatch.setattr(pallas_norms, "_TPU_ROW_CAP", 8)
    monkeypatch.setattr(pallas_norms, "_TPU_TILE_BYTES", 4 * 6 * 130)  # 130 channels of 6 positions
    monkeypatch.setattr(pallas_norms, "_GPU_TILE_ELEMENTS", 64)


@pytest.fixture
def kernel_calls(monkeypatch):
    """The names of the Pallas kernels called (so that a silent fallback to the reference fails)."""
    calls = []
    original = pallas_norms._call

    def counting(target, name, *args):
        calls.append(name)
        return original(target, name, *args)

    monkeypatch.setattr(pallas_norms, "_call", counting)
    return calls


def _compare(got, expected, label, tolerance=TOLERANCE):
    got, expected = jax.tree.leaves(got), jax.tree.leaves(expected)
    assert len(got) == len(expected), label
    for i, (a, b) in enumerate(zip(got, expected)):
        assert a.shape == b.shape and a.dtype == b.dtype, (label, i, a.shape, b.shape, a.dtype, b.dtype)
        a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
        scale = max(1.0, float(np.abs(b).max(initial=0.0)))
        error = float(np.abs(a - b).max(initial=0.0))
        print(f"{label}[{i}]: max |kernel - reference| = {error:.2e} (scale {scale:.2g})")
        assert error <= tolerance * scale, (label, i, error, scale)


def _vjp(function, arguments, upstream):
    """`function(*arguments)` and its vector-Jacobian product with `upstream`, jitted (as Keras'
    train steps are; it is also faster than running the small ops one by one)."""

    def run(arguments, upstream):
        outputs, pullback = jax.vjp(function, *arguments)
        return outputs, pullback(upstream)

    return jax.jit(run)(arguments, upstream)


def _check(call, op, arguments, upstream, label, kernel_calls):
    """`call(op, *arguments)` under the interpreter against `call(op.reference, *arguments)`:
    outputs and gradients; the kernel must have run forward and backward."""
    expected = _vjp(lambda *a: call(op.reference, *a), arguments, upstream)
    with fast_paths.kernels("interpret"):
        got = _vjp(lambda *a: call(op, *a), arguments, upstream)
    assert any(name.endswith("backward") for name in kernel_calls), kernel_calls
    assert any(not name.endswith("backward") for name in kernel_calls), kernel_calls
    _compare(got, expected, label)


def _normal(rng, shape, scale=2.0, offset=None):
    offset = rng.standard_normal() if offset is None else offset
    return jnp.asarray((rng.standard_normal(shape) * scale + offset).astype("float32"))


def _uniform(rng, shape, low, high):
    return jnp.asarray(rng.uniform(low, high, shape).astype("float32"))


def _channel_shape(shape, channel_axis):
    channel_shape = [1] * len(shape)
    channel_shape[channel_axis] = shape[channel_axis]
    return tuple(channel_shape)


# --- RMSNorm, CRMSNorm ---------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS, indirect=True)
@pytest.mark.parametrize(
    "shape, axis, gamma_shape",
    [
        ((2, 5, 6, 12), -1, (12,)),
        ((2, 5, 6, 12), (-2, -1), (1, 1, 6, 12)),
        ((3, 7, 13), -1, None),
        ((1, 9), [1], (1, 9)),
    ],
    ids=["last", "last_two", "no_gamma", "one_row"],
)
def test_rms_normalization(shape, axis, gamma_shape, layout, kernel_calls, rng):
    x = _normal(rng, shape)
    arguments = [x] if gamma_shape is None else [x, _uniform(rng, gamma_shape, 0.5, 1.5)]

    def call(op, x, gamma=None):
        return op(x, axis, 1e-6, gamma)

    upstream = _normal(rng, shape, 1.0, 0.0)
    _check(call, norm_ops.rms_normalization, arguments, upstream, f"rms {shape} {axis} {layout}", kernel_calls)


@pytest.mark.parametrize("layout", LAYOUTS, indirect=True)
@pytest.mark.parametrize("shape, gamma_shape", [((2, 5, 6, 12), (12,)), ((3, 7, 13), None)], ids=["4d", "3d"])
def test_crms_normalization(shape, gamma_shape, layout, kernel_calls, rng):
    z = _normal(rng, shape)
    arguments = [z] if gamma_shape is None else [z, _uniform(rng, gamma_shape, 0.5, 1.5)]

    def call(op, z, gamma=None):
        return op(z, -1, 1e-6, gamma)

    upstream = _normal(rng, shape, 1.0, 0.0)
    _check(call, norm_ops.crms_normalization, arguments, upstream, f"crms {shape} {layout}", kernel_calls)


# --- FRN -----------------------------------------------------------------------------------------

FRN_CASES = [
    ("2d", ((2, 5, 6, 12), -1)),
    ("1d_channels_first_one_sample", ((1, 12, 7), 1)),
    ("3d_channels_first", ((2, 5, 3, 4, 1), 1)),
]


@pytest.mark.parametrize(
    "shape, channel_axis, learned, layout", _rotated(FRN_CASES, [True, False]), indirect=["layout"]
)
def test_frn(shape, channel_axis, learned, layout, kernel_calls, rng):
    rank = len(shape)
    spatial_axes = tuple(a for a in range(1, rank) if a != channel_axis % rank)
    arguments = [_normal(rng, shape)]
    if learned:  # FRN's learned epsilon: a 0-d tensor that gets a gradient
        arguments.append(jnp.asarray(rng.uniform(1e-3, 0.5), "float32"))

    def call(op, x, epsilon=1e-3):
        return op(x, epsilon, spatial_axes=spatial_axes)

    upstream = _normal(rng, shape, 1.0, 0.0)
    _check(call, norm_ops.frn, arguments, upstream, f"frn {shape} learned={learned} {layout}", kernel_calls)


# --- EvoNorm-B -----------------------------------------------------------------------------------

EVONORM_B_SHAPES = [
    ("2d", ((2, 5, 6, 12), -1)),
    ("1d_channels_first", ((3, 12, 7), 1)),
    ("3d", ((2, 3, 4, 5, 6), -1)),
    ("one_sample", ((1, 5, 6, 7), -1)),
]
# Each variant in training and at inference, the shapes rotating (every mode meets every shape).
EVONORM_B_CASES = [
    (f"{variant}_{'training' if training else 'inference'}_{name}", (variant, training, *case))
    for i, (variant, training) in enumerate((v, t) for v in ("b0", "b1", "b2") for t in (True, False))
    for name, case in [EVONORM_B_SHAPES[i % 4], EVONORM_B_SHAPES[(i + 1) % 4]]
]


@pytest.mark.parametrize(
    "variant, training, shape, channel_axis, layout",
    [
        pytest.param(*case, LAYOUTS[i % 2], id=f"{name}-{LAYOUTS[i % 2]}")
        for i, (name, case) in enumerate(EVONORM_B_CASES)
    ],
    indirect=["layout"],
)
def test_evonorm_b(variant, training, shape, channel_axis, layout, kernel_calls, rng):
    rank = len(shape)
    channel_axis %= rank
    spatial_axes = tuple(a for a in range(1, rank) if a != channel_axis)
    channel_shape = _channel_shape(shape, channel_axis)
    op = getattr(norm_ops, f"evonorm_{variant}")
    arguments = [_normal(rng, shape)]
    if variant == "b0":
        arguments.append(_uniform(rng, channel_shape, 0.2, 1.5))
    if not training:  # the moving variance, which gets its gradient at inference
        arguments.append(_uniform(rng, channel_shape, 0.5, 2.0))

    def call(op, x, *rest):
        moving_variance = None if training else rest[-1]
        v = rest[:1] if variant == "b0" else ()
        return op(x, *v, spatial_axes=spatial_axes, epsilon=1e-5, moving_variance=moving_variance)

    # `(y, s2_b, count)`, and at inference `(y, moving_variance, None)`: the batch variance and the
    # count by value only (upstream 0: the layers stop the variance's gradient).
    zero_upstream = (jnp.zeros(channel_shape), jnp.zeros(())) if training else (jnp.zeros(channel_shape), None)
    upstream = (_normal(rng, shape, 1.0, 0.0), *zero_upstream)
    label = f"evonorm_{variant} {shape} training={training} {layout}"
    _check(call, op, arguments, upstream, label, kernel_calls)


# --- EvoNorm-S -----------------------------------------------------------------------------------

EVONORM_S_CASES = [
    ("2d", ((2, 5, 6, 12), -1, 4)),
    ("2d_channels_first", ((2, 12, 5, 6), 1, 3)),
    ("3d_one_sample_one_channel_groups", ((1, 2, 3, 4, 6), -1, 6)),
    ("1d_channels_first_one_group", ((3, 6, 5), 1, 1)),
]


@pytest.mark.parametrize(
    "shape, channel_axis, groups, variant, layout",
    _rotated(EVONORM_S_CASES, ["s0", "s1", "s2"], 2),
    indirect=["layout"],
)
def test_evonorm_s(shape, channel_axis, groups, variant, layout, kernel_calls, rng):
    channel_axis %= len(shape)
    arguments = [_normal(rng, shape)]
    if variant == "s0":
        arguments.append(_uniform(rng, _channel_shape(shape, channel_axis), 0.2, 1.5))

    def call(op, x, v=None):
        return op(x, v, channel_axis=channel_axis, groups=groups, epsilon=1e-5, centered=variant != "s2")

    upstream = _normal(rng, shape, 1.0, 0.0)
    label = f"evonorm_{variant} {shape} groups={groups} {layout}"
    _check(call, norm_ops.evonorm_s, arguments, upstream, label, kernel_calls)


# --- PowerNorm -----------------------------------------------------------------------------------


def _power_case(rng, shape, channel_axis):
    channel_shape = _channel_shape(shape, channel_axis)
    arguments = [
        _normal(rng, shape),  # xs
        _uniform(rng, channel_shape, 0.5, 2.0),  # quadratic_mean
        _uniform(rng, channel_shape, 0.5, 2.0),  # normalizer
        _normal(rng, channel_shape, 3.0, 0.0),  # scaled_statistic
        jnp.asarray(rng.uniform(0.5, 4.0), "float32"),  # statistic_scale
    ]
    # The auxiliary's upstream is the loss scale.
    upstream = (_normal(rng, shape, 1.0, 0.0), jnp.asarray(rng.uniform(0.5, 2.0), "float32"))
    reduce_axes = tuple(a for a in range(len(shape)) if a != channel_axis)

    def call(op, *arguments):
        return op(*arguments, epsilon=1e-5, alpha_bkw=0.9, reduce_axes=reduce_axes)

    return call, arguments, upstream


@pytest.mark.parametrize("layout", LAYOUTS, indirect=True)
@pytest.mark.parametrize(
    "shape, channel_axis", [((3, 7, 12), 2), ((5, 12), 1), ((2, 12, 9), 1)], ids=["3d", "2d", "channels_first"]
)
def test_power_normalization(shape, channel_axis, layout, kernel_calls, rng):
    call, arguments, upstream = _power_case(rng, shape, channel_axis)
    _check(call, norm_ops.power_normalization, arguments, upstream, f"power {shape} {layout}", kernel_calls)


# --- Several tiles, edge tiles ---------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS, indirect=True)
def test_several_and_partial_tiles(layout, small_tiles, kernel_calls, rng):
    # Rows: 17 rows of 12 (TPU: tiles of 8 rows, the last partial; GPU: tiles of 4 rows of 16 lanes).
    arguments = [_normal(rng, (17, 12)), _uniform(rng, (12,), 0.5, 1.5)]
    upstream = _normal(rng, (17, 12), 1.0, 0.0)

    def rms(op, x, gamma):
        return op(x, -1, 1e-6, gamma)

    _check(rms, norm_ops.rms_normalization, arguments, upstream, f"rms tiles {layout}", kernel_calls)
    # Planes: 200 channels of 6 positions (TPU: tiles of 128 channels, the last partial; GPU: 8 x 8).
    shape = (2, 2, 3, 200)
    arguments = [_normal(rng, shape), _uniform(rng, (1, 1, 1, 200), 0.2, 1.5)]
    upstream = _normal(rng, shape, 1.0, 0.0)

    def b0(op, x, v):
        return op(x, v, spatial_axes=(1, 2), epsilon=1e-5)[0]

    _check(b0, norm_ops.evonorm_b0, arguments, upstream, f"evonorm_b0 tiles {layout}", kernel_calls)

    def s0(op, x, v):  # 25 groups of 8 channels (TPU: tiles of 16 groups; GPU: of one group)
        return op(x, v, channel_axis=3, groups=25, epsilon=1e-5)

    _check(s0, norm_ops.evonorm_s, arguments, upstream, f"evonorm_s0 tiles {layout}", kernel_calls)
    # PowerNorm's partial sums over several tiles: rows (TPU: the last tile's garbage rows masked
    # out of the sums), and channels first (GPU: channel tiles past C).
    shape, channel_axis = ((3, 7, 12), 2) if layout == "tpu" else ((3, 20, 6), 1)
    call, arguments, upstream = _power_case(rng, shape, channel_axis)
    _check(call, norm_ops.power_normalization, arguments, upstream, f"power tiles {shape} {layout}", kernel_calls)


# --- Layers ----------------------------------------------------------------------------------------


def _run_layer(factory, shape, x, upstream, training, mode, rng_weights):
    with fast_paths.kernels(mode):
        layer = factory()
        layer.build(shape)
        for variable, value in zip(layer.weights, rng_weights(layer)):
            variable.assign(value)
        outputs, dx, dweights = vjp_function(layer, training=training, jit=True)(x, upstream)
        results = [outputs, dx, *dweights, *[v.value for v in layer.non_trainable_variables]]
        return [np.asarray(keras.ops.convert_to_numpy(r), dtype="float64") for r in results]


LAYER_CASES = [
    ("EvoNormB0", lambda: keras_norms.layers.EvoNormB0(bessel_correction=True), (2, 5, 6, 12), True),
    ("EvoNormB1", lambda: keras_norms.layers.EvoNormB1(axis=1), (2, 12, 5, 6), False),
    ("EvoNormB2", lambda: keras_norms.layers.EvoNormB2(), (3, 7, 12), True),
    ("EvoNormS0", lambda: keras_norms.layers.EvoNormS0(groups=4), (2, 5, 6, 12), True),
    ("EvoNormS2", lambda: keras_norms.layers.EvoNormS2(axis=1, groups=3), (2, 12, 5, 6), True),
    ("FRN", lambda: keras_norms.layers.FilterResponseNormalization(learned_epsilon=True), (2, 5, 6, 12), True),
    ("RMSNormalization", lambda: keras_norms.layers.RMSNormalization(center=True), (2, 7, 12), True),
    ("CRMSNormalization", lambda: keras_norms.layers.CRMSNormalization(), (2, 7, 13), True),
    ("PowerNormalization", lambda: keras_norms.layers.PowerNormalization(), (3, 7, 12), True),
]


@pytest.mark.parametrize(
    "factory, shape, training",
    [case[1:] for case in LAYER_CASES],
    ids=[f"{c[0]}_{'training' if c[3] else 'inference'}_{len(c[2])}d" for c in LAYER_CASES],
)
def test_layer_with_kernels_matches_layer_without(factory, shape, training, kernel_calls, rng):
    x = _normal(rng, shape)
    upstream = _normal(rng, shape, 1.0, 0.0)

    def weights(layer):
        # Positive values for every variable (gains, v, moving statistics, learned epsilon, ...).
        return [rng.uniform(0.5, 1.5, tuple(w.shape)).astype(w.dtype) for w in layer.weights]

    state = rng.bit_generator.state
    got = _run_layer(factory, shape, x, upstream, training, "interpret", weights)
    assert any(name.endswith("backward") for name in kernel_calls), kernel_calls
    kernel_calls.clear()
    rng.bit_generator.state = state
    expected = _run_layer(factory, shape, x, upstream, training, "off", weights)
    assert not kernel_calls
    for i, (a, b) in enumerate(zip(got, expected)):
        scale = max(1.0, float(np.abs(b).max()))
        assert float(np.abs(a - b).max()) <= TOLERANCE * scale, (i, float(np.abs(a - b).max()))


@pytest.mark.parametrize(
    "factory, shape",
    [
        (lambda: keras_norms.layers.EvoNormB0(dtype="mixed_bfloat16"), (2, 5, 6, 12)),
        (lambda: keras_norms.layers.RMSNormalization(dtype="mixed_bfloat16"), (2, 7, 12)),
    ],
    ids=["EvoNormB0", "RMSNormalization"],
)
def test_layer_under_mixed_bfloat16(factory, shape, kernel_calls, rng):
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        x = _normal(rng, shape)
        upstream = _normal(rng, shape, 1.0, 0.0)

        def weights(layer):
            return [np.full(tuple(w.shape), 1.25, "float32") for w in layer.weights]

        got = _run_layer(factory, shape, x, upstream, True, "interpret", weights)
        assert any(name.endswith("backward") for name in kernel_calls), kernel_calls
        expected = _run_layer(factory, shape, x, upstream, True, "off", weights)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    for a, b in zip(got, expected):
        scale = max(1.0, float(np.abs(b).max()))
        assert float(np.abs(a - b).max()) <= 2.0**-7 * scale


# --- Dispatch ---------------------------------------------------------------------------------------


def test_every_kernel_registers_for_jax_only():
    for name in NAMES:
        assert fast_paths.kernels_available(name) == ["jax"]


def test_cpu_arrays_in_auto_mode_take_the_reference(monkeypatch, rng):
    assert jax.default_backend() == "cpu"
    x = _normal(rng, (2, 5, 6, 12))

    def no_kernel(*args, **kwargs):
        raise AssertionError("a Pallas kernel ran on a CPU array in auto mode")

    monkeypatch.setattr(pallas_norms.pl, "pallas_call", no_kernel)
    with fast_paths.kernels("auto"):
        assert fast_paths.get_kernel("rms_normalization", x, -1, 1e-6, None) is None
        assert fast_paths.get_kernel("evonorm_b0", x, x[:1, :1, :1], spatial_axes=(1, 2), epsilon=1e-5) is None
        assert fast_paths.get_kernel("frn", x, 1e-6, spatial_axes=(1, 2)) is None
        on_cpu = [
            norm_ops.rms_normalization(x, -1, 1e-6),
            norm_ops.evonorm_b1(x, spatial_axes=(1, 2), epsilon=1e-5)[0],
            norm_ops.frn(x, 1e-6, spatial_axes=(1, 2)),
        ]
    with fast_paths.kernels("off"):
        expected = [
            norm_ops.rms_normalization(x, -1, 1e-6),
            norm_ops.evonorm_b1(x, spatial_axes=(1, 2), epsilon=1e-5)[0],
            norm_ops.frn(x, 1e-6, spatial_axes=(1, 2)),
        ]
    for got, want in zip(on_cpu, expected):
        np.testing.assert_array_equal(got, want)
    with fast_paths.kernels("interpret"), pytest.raises(AssertionError, match="auto mode"):
        norm_ops.rms_normalization(x, -1, 1e-6)


def test_unsupported_arguments_take_the_reference(rng):
    x = _normal(rng, (2, 5, 6, 12))
    with fast_paths.kernels("interpret"):
        # A gain that varies along a non-normalized axis.
        gamma = _uniform(rng, (2, 1, 1, 12), 0.5, 1.5)
        np.testing.assert_array_equal(
            norm_ops.rms_normalization(x, -1, 1e-6, gamma), norm_ops.rms_normalization.reference(x, -1, 1e-6, gamma)
        )
        # Channels in the middle.
        y = norm_ops.frn(x, 1e-6, spatial_axes=(1, 3))
        np.testing.assert_array_equal(y, norm_ops.frn.reference(x, 1e-6, spatial_axes=(1, 3)))


# --- Lowering for the devices ------------------------------------------------------------------------

LOWERING_CASES = {
    "rms_normalization": lambda x: pallas_norms.rms_normalization(x, -1, 1e-6, x[0, 0, 0]),
    "crms_normalization": lambda x: pallas_norms.crms_normalization(x, -1, 1e-6, x[0, 0, 0]),
    "evonorm_b0": lambda x: pallas_norms.evonorm_b0(x, x[:1, :1, :1] + 1.0, spatial_axes=(1, 2), epsilon=1e-5)[0],
    "evonorm_b1_inference": lambda x: pallas_norms.evonorm_b1(
        x, spatial_axes=(1, 2), epsilon=1e-5, moving_variance=jnp.ones(x.shape[-1])
    )[0],
    "evonorm_b2_channels_first": lambda x: pallas_norms.evonorm_b2(
        jnp.transpose(x, (0, 3, 1, 2)), spatial_axes=(2, 3), epsilon=1e-5
    )[0],
    "evonorm_s": lambda x: pallas_norms.evonorm_s(x, x[:1, :1, :1], channel_axis=3, groups=8, epsilon=1e-5),
    "evonorm_s_channels_first": lambda x: pallas_norms.evonorm_s(
        jnp.transpose(x, (0, 3, 1, 2)), channel_axis=1, groups=8, epsilon=1e-5, centered=False
    ),
    "frn": lambda x: pallas_norms.frn(x, jnp.float32(1e-6), spatial_axes=(1, 2)),
    "power_normalization": lambda x: pallas_norms.power_normalization(
        x.reshape(x.shape[0], -1, x.shape[-1]),
        x[0, 0, 0],
        x[0, 0, 0] ** 2,
        x[0, 0, 0],
        jnp.float32(2.0),
        epsilon=1e-5,
        alpha_bkw=0.9,
        reduce_axes=(0, 1),
    ),
}


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
@pytest.mark.parametrize("case", sorted(LOWERING_CASES))
@pytest.mark.parametrize(
    "shape", [(8, 8, 8, 128), (2, 5, 3, 24), (2, 5, 3, 256)], ids=["aligned", "odd", "several_tiles"]
)
def test_forward_and_backward_lower_for_the_device(case, platform, shape, monkeypatch):
    """Pallas lowers each kernel to Mosaic (TPU) or Triton (CUDA) IR; compiling that needs a device."""
    if shape[-1] == 256:
        # Tiles of 8 rows (the last partial) and of 128 channels (TPU), of 2 rows and 32 channels (GPU).
        monkeypatch.setattr(pallas_norms, "_TPU_TILE_BYTES", 12000)
        monkeypatch.setattr(pallas_norms, "_GPU_TILE_ELEMENTS", 512)
    function = LOWERING_CASES[case]

    def forward_and_backward(x, upstream):
        outputs, pullback = jax.vjp(function, x)
        return outputs, pullback(jax.tree.map(lambda o: upstream if o.shape == x.shape else o, outputs))

    argument = jax.ShapeDtypeStruct(shape, jnp.float32)
    layout = "gpu" if platform == "cuda" else "tpu"
    with pallas_norms._lowering(layout, interpret=False):
        # A fresh function: jax.jit's cache does not know the lowering target.
        exported = export.export(
            jax.jit(lambda x, u: forward_and_backward(x, u)),
            platforms=[platform],
            disabled_checks=[export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")],
        )(argument, argument)
    text = exported.mlir_module()
    assert text.count("tpu_custom_call" if platform == "tpu" else "__gpu$xla.gpu.triton") >= 2


def test_no_kernel_in_a_program_partitioned_over_several_devices(monkeypatch):
    """Under `keras.distribution` over several devices (DataParallel on a TPU's cores) the XLA path
    runs: XLA cannot partition a Pallas call and would gather the global batch onto each device."""
    monkeypatch.setattr(pallas_norms.jax, "default_backend", lambda: "tpu")
    x = jnp.ones((2, 4, 8), jnp.float32)
    assert pallas_norms._on_device(x)
    mesh = types.SimpleNamespace(devices=np.empty((8,), dtype=object))
    monkeypatch.setattr(keras.distribution, "distribution", lambda: types.SimpleNamespace(device_mesh=mesh))
    assert not pallas_norms._on_device(x)
    mesh.devices = np.empty((1,), dtype=object)
    assert pallas_norms._on_device(x)
