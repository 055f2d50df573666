"""WeightNormalization against a float64 oracle and torch's weight_norm; weight_normalize and its fold.

Tolerances: float32 outputs within 1e-5 (absolute and relative) of the float64 oracle; float32
gradients within 1e-4 of it relative to the largest entry; the wrapper's initial outputs within
1e-6 of the unwrapped layer's, relative to the output scale (float32 rounding of `||v|| * v/||v||`);
data-dependent initialization: the first batch's pre-activations have per-channel mean 0 and
standard deviation 1 to 1e-5; float64 against torch.nn.utils.parametrizations.weight_norm: 1e-10
(1e-5 for Dense, whose float64 matmul Keras 3.15 computes in float32);
mixed precision: `MIXED_PRECISION_ULPS` units of the compute dtype's rounding times the output scale,
as the shared layer checker's.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_norms.keras_internals import nested_layers
from keras_norms.parametrization import WeightNormalization
from keras_norms.surgery import copy_model, fold_reparametrizations, reparametrize, weight_normalize
from keras_norms.testing import check_serialization, vjp_numpy
from keras_norms.testing.layer_checker import MACHINE_EPSILON, MIXED_POLICIES, MIXED_PRECISION_ULPS
from tests.oracles import weight_norm as oracle

OUTPUT_TOLERANCE = 1e-5
GRADIENT_TOLERANCE = 1e-4
INITIAL_TOLERANCE = 1e-6
STANDARDIZED_TOLERANCE = 1e-5
TORCH_TOLERANCE = 1e-10
DENSE_FLOAT64_TOLERANCE = 1e-5

# name -> (layer factory, input shape, oracle forward, oracle vjp, kernel output axis)
CASES = {
    "dense": (lambda: keras.layers.Dense(5), (6, 4), oracle.dense, oracle.dense_vjp, -1),
    "dense_tanh_rank3": (
        lambda: keras.layers.Dense(5, activation="tanh"),
        (3, 4, 4),
        oracle.dense,
        oracle.dense_vjp,
        -1,
    ),
    "conv2d": (
        lambda: keras.layers.Conv2D(4, 3, strides=2),
        (2, 7, 7, 3),
        lambda x, w: oracle.conv2d(x, w, (2, 2)),
        lambda x, w, dy: oracle.conv2d_vjp(x, w, dy, (2, 2)),
        -1,
    ),
    "conv2d_transpose": (
        lambda: keras.layers.Conv2DTranspose(4, 3, strides=2),
        (2, 3, 3, 3),
        lambda x, w: oracle.conv2d_transpose(x, w, (2, 2)),
        lambda x, w, dy: oracle.conv2d_transpose_vjp(x, w, dy, (2, 2)),
        -2,
    ),
}


def to_numpy(tensor):
    return np.asarray(ops.convert_to_numpy(tensor), dtype=np.float64)


def random_input(rng, shape, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype("float32")


def make_wrapper(case, rng):
    """A built wrapper (no data-dependent initialization) with random `g`, `v` and bias, and those in float64."""
    factory, shape, *_ = CASES[case]
    wrapper = WeightNormalization(factory(), data_init=False)
    wrapper.build(shape)
    values = {
        "g": rng.uniform(0.5, 2.0, wrapper.g.shape) * rng.choice([-1.0, 1.0], wrapper.g.shape),
        "v": rng.standard_normal(wrapper.v.shape),
        "bias": rng.uniform(-0.5, 0.5, wrapper.layer.bias.shape),
    }
    for name, variable in (("g", wrapper.g), ("v", wrapper.v), ("bias", wrapper.layer.bias)):
        variable.assign(values[name].astype("float32"))
    return wrapper, values


def oracle_forward(case, values, x):
    _, _, forward, _, output_axis = CASES[case]
    pre_activation = forward(x, oracle.weight_norm_kernel(values["v"], values["g"], output_axis)) + values["bias"]
    return np.tanh(pre_activation) if case == "dense_tanh_rank3" else pre_activation


def oracle_gradients(case, values, x, upstream):
    """Gradients of `sum(outputs * upstream)` with respect to the input, `g`, `v` and the bias."""
    _, _, forward, vjp, output_axis = CASES[case]
    kernel = oracle.weight_norm_kernel(values["v"], values["g"], output_axis)
    d_pre = upstream
    if case == "dense_tanh_rank3":
        d_pre = upstream * (1.0 - np.tanh(forward(x, kernel) + values["bias"]) ** 2)
    dx, dkernel = vjp(x, kernel, d_pre)
    dg, dv = oracle.weight_norm_vjp(values["v"], values["g"], dkernel, output_axis)
    return {"inputs": dx, "g": dg, "v": dv, "bias": np.sum(d_pre, axis=tuple(range(d_pre.ndim - 1)))}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_oracle_with_gradients(case, rng):
    wrapper, values = make_wrapper(case, rng)
    x = random_input(rng, CASES[case][1])
    expected = oracle_forward(case, values, x.astype(np.float64))
    for training in (False, True):  # data_init=False: the same either way
        got = to_numpy(wrapper(x, training=training))
        np.testing.assert_allclose(got, expected, rtol=OUTPUT_TOLERANCE, atol=OUTPUT_TOLERANCE)

    upstream = rng.standard_normal(expected.shape).astype("float32")
    want = oracle_gradients(case, values, x.astype(np.float64), upstream.astype(np.float64))
    _, dx, dweights = vjp_numpy(wrapper, x, upstream)
    names = {id(wrapper.g): "g", id(wrapper.v): "v", id(wrapper.layer.bias): "bias"}
    got = {"inputs": dx, **{names[id(v)]: d for v, d in zip(wrapper.trainable_variables, dweights)}}
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(
            got[name],
            want[name],
            rtol=GRADIENT_TOLERANCE,
            atol=GRADIENT_TOLERANCE * np.abs(want[name]).max(),
            err_msg=f"gradient with respect to {name}",
        )


@pytest.mark.parametrize(
    "factory, shape, output_axis",
    [
        (lambda: keras.layers.Dense(5, activation="relu"), (6, 4), -1),
        (lambda: keras.layers.Conv2D(5, 3, data_format="channels_first"), (2, 3, 6, 6), -1),
        (lambda: keras.layers.Conv2DTranspose(4, 2, strides=2), (2, 3, 3, 3), -2),
        (lambda: keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 5), bias_axes="d"), (2, 3, 4), -1),
    ],
    ids=["dense_relu", "conv2d_channels_first", "conv2d_transpose", "einsum_dense"],
)
@pytest.mark.parametrize("data_init", [True, False])
def test_initial_outputs_are_the_unwrapped_layers(factory, shape, output_axis, data_init, rng):
    layer = factory()
    x = random_input(rng, shape)
    expected = to_numpy(layer(x))
    wrapper = WeightNormalization(layer, data_init=data_init)
    for training in (False,) if data_init else (False, True):
        got = to_numpy(wrapper(x, training=training))
        np.testing.assert_allclose(got, expected, atol=INITIAL_TOLERANCE * np.abs(expected).max())
    v = np.moveaxis(to_numpy(wrapper.v), output_axis, -1)
    norms = np.linalg.norm(np.reshape(v, (-1, v.shape[-1])), axis=0)
    np.testing.assert_allclose(to_numpy(wrapper.g), norms, rtol=INITIAL_TOLERANCE)


def _pre_activations(wrapper, x):
    """The wrapper's outputs with its layer's activation switched off for the call."""
    activation = wrapper.layer.activation
    wrapper.layer.activation = keras.activations.linear
    try:
        return to_numpy(wrapper(x, training=False))
    finally:
        wrapper.layer.activation = activation


def _initialization_state(wrapper):
    return [to_numpy(v) for v in (wrapper.g, wrapper.g_offset, wrapper.bias_offset)]


@pytest.mark.parametrize(
    "factory, shape, channel_axis",
    [
        (lambda: keras.layers.Dense(5, activation="relu"), (8, 4), -1),
        (lambda: keras.layers.Conv2D(5, 3, data_format="channels_first"), (4, 3, 6, 6), 1),
        (lambda: keras.layers.Conv2DTranspose(4, 2, strides=2), (4, 3, 3, 3), -1),
    ],
    ids=["dense_relu", "conv2d_channels_first", "conv2d_transpose"],
)
def test_data_init_standardizes_the_first_training_batch_once_in_fit(factory, shape, channel_axis, rng):
    inputs = keras.Input(shape[1:])
    wrapper = WeightNormalization(factory())
    model = keras.Model(inputs, wrapper(inputs))
    # Learning rate 0: whatever changes in fit is the initialization's doing.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    first = random_input(rng, shape, scale=3.0, shift=1.0)
    second = random_input(rng, shape, scale=0.5, shift=-2.0)
    target = np.zeros(model.output.shape[1:], "float32")[None].repeat(2 * shape[0], axis=0)
    # One fit call, two batches: the first initializes, the second must not.
    model.fit(np.concatenate([first, second]), target, batch_size=shape[0], shuffle=False, epochs=1, verbose=0)
    assert bool(ops.convert_to_numpy(wrapper.initialized))

    pre_activation = _pre_activations(wrapper, first)
    axes = tuple(axis for axis in range(len(pre_activation.shape)) if axis != channel_axis % pre_activation.ndim)
    np.testing.assert_allclose(pre_activation.mean(axis=axes), 0.0, atol=STANDARDIZED_TOLERANCE)
    np.testing.assert_allclose(pre_activation.std(axis=axes), 1.0, atol=STANDARDIZED_TOLERANCE)
    activation = keras.activations.get(wrapper.layer.activation)
    np.testing.assert_allclose(
        to_numpy(model(first)), to_numpy(activation(pre_activation)), atol=1e-6, err_msg="activation after"
    )

    state = _initialization_state(wrapper)
    model.fit(second, target[: shape[0]], batch_size=shape[0], epochs=1, verbose=0)
    for before, after in zip(state, _initialization_state(wrapper)):
        np.testing.assert_array_equal(after, before)


def test_inference_calls_do_not_initialize(rng):
    wrapper = WeightNormalization(keras.layers.Dense(5))
    x = random_input(rng, (6, 4), scale=3.0)
    wrapper(x)
    wrapper(x, training=False)
    assert not bool(ops.convert_to_numpy(wrapper.initialized))
    np.testing.assert_array_equal(to_numpy(wrapper.g_offset), 0.0)


def test_training_moves_g_and_v(rng):
    inputs = keras.Input((4,))
    wrapper = WeightNormalization(keras.layers.Dense(3, activation="tanh"))
    model = keras.Model(inputs, wrapper(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x, y = random_input(rng, (16, 4)), random_input(rng, (16, 3))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # the first batch initializes
    before = {v.path: to_numpy(v) for v in model.trainable_variables}
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for variable in model.trainable_variables:
        assert not np.array_equal(to_numpy(variable), before[variable.path]), f"{variable.path} did not train"


def test_zero_kernel_column_stays_finite(rng):
    wrapper = WeightNormalization(keras.layers.Dense(5), data_init=False)
    wrapper.build((None, 4))
    v = rng.standard_normal((4, 5))
    v[:, 1] = 0.0
    wrapper.v.assign(v.astype("float32"))
    x = random_input(rng, (6, 4))
    outputs, dx, dweights = vjp_numpy(wrapper, x, np.ones((6, 5), "float32"))
    for value in [outputs, dx, *dweights]:
        assert np.all(np.isfinite(value))
    np.testing.assert_allclose(np.asarray(outputs)[:, 1], to_numpy(wrapper.layer.bias)[1], atol=0)


def test_save_and_load_keep_the_initialization(tmp_path, rng):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, WeightNormalization(keras.layers.Dense(3, activation="relu"))(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x = random_input(rng, (8, 4), scale=2.0, shift=1.0)
    model.fit(x, random_input(rng, (8, 3)), batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    wrapper = loaded.layers[-1]
    assert isinstance(wrapper, WeightNormalization) and wrapper.data_init
    assert bool(ops.convert_to_numpy(wrapper.initialized))
    for original, revived in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(to_numpy(revived), to_numpy(original), err_msg=revived.path)
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))
    # A training call of the reloaded model does not initialize again.
    state = _initialization_state(wrapper)
    loaded(random_input(rng, (8, 4), scale=0.1), training=True)
    for before, after in zip(state, _initialization_state(wrapper)):
        np.testing.assert_array_equal(after, before)


def test_config_round_trip():
    wrapper = WeightNormalization(keras.layers.Conv2D(4, 3, activation="relu", name="conv"), data_init=False)
    revived = check_serialization(wrapper)
    assert not revived.data_init and isinstance(revived.layer, keras.layers.Conv2D)
    assert revived.layer.get_config() == wrapper.layer.get_config()


@pytest.mark.parametrize("policy", MIXED_POLICIES)
@pytest.mark.parametrize(
    "factory, shape",
    [(lambda: keras.layers.Dense(6), (8, 5)), (lambda: keras.layers.Conv2D(4, 3), (4, 6, 6, 3))],
    ids=["dense", "conv2d"],
)
def test_mixed_precision(policy, factory, shape, rng):
    """Same weights and (rounded) input as a float32 wrapper; data init on both, then inference."""
    compute_dtype = keras.DTypePolicy(policy).compute_dtype
    reference = WeightNormalization(factory())
    reference.build(shape)
    keras.config.set_dtype_policy(policy)
    wrapper = WeightNormalization(factory())
    wrapper.build(shape)
    assert wrapper.compute_dtype == compute_dtype
    for variable in wrapper.weights:
        assert variable.dtype in ("float32", "bool"), f"{variable.path} is {variable.dtype}"
    for target, source in zip(reference.weights, wrapper.weights):
        target.assign(source.value)
    x_low = ops.cast(random_input(rng, shape, scale=2.0, shift=0.5), compute_dtype)
    x_rounded = ops.cast(x_low, "float32")
    for training in (True, False):
        y = wrapper(x_low, training=training)
        assert keras.backend.standardize_dtype(y.dtype) == compute_dtype
        expected = to_numpy(reference(x_rounded, training=training))
        scale = np.abs(expected).max()
        np.testing.assert_allclose(
            to_numpy(ops.cast(y, "float32")),
            expected,
            atol=MIXED_PRECISION_ULPS * MACHINE_EPSILON[compute_dtype] * scale,
            err_msg=f"{policy}, training={training}",
        )


@keras.saving.register_keras_serializable(package="keras_norms_tests")
class ResidualMLP(keras.layers.Layer):
    """A subclassed block, `x + project(expand(x))`: its Dense layers are visible only as attributes."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.expand = keras.layers.Dense(2 * units, activation="tanh")
        self.project = keras.layers.Dense(units)

    def build(self, input_shape):
        self.expand.build(input_shape)
        self.project.build((*input_shape[:-1], 2 * self.units))

    def call(self, inputs):
        return inputs + self.project(self.expand(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def functional_cnn():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def sequential_mlp():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])


def model_with_block():
    inputs = keras.Input((6,))
    x = ResidualMLP(6)(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def wrappers_in(model):
    return [layer for layer in nested_layers(model) if isinstance(layer, WeightNormalization)]


@pytest.mark.parametrize(
    "build, wrapped", [(functional_cnn, 3), (sequential_mlp, 2), (model_with_block, 3)], ids=["cnn", "mlp", "block"]
)
def test_weight_normalize_trains_and_folds_back(build, wrapped, rng):
    model = build()
    x = random_input(rng, (8, *model.input_shape[1:]), scale=2.0)
    y = random_input(rng, (8, 3))
    expected = to_numpy(model(x))
    normalized = weight_normalize(model)
    assert len(wrappers_in(normalized)) == wrapped
    assert not wrappers_in(model), "the original changed"
    got = to_numpy(normalized(x))
    np.testing.assert_allclose(got, expected, atol=INITIAL_TOLERANCE * np.abs(expected).max())

    normalized.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    history = normalized.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(bool(ops.convert_to_numpy(w.initialized)) for w in wrappers_in(normalized))

    trained = to_numpy(normalized(x))
    assert not np.allclose(trained, expected)
    folded = fold_reparametrizations(normalized)
    assert not wrappers_in(folded)
    assert len(wrappers_in(normalized)) == wrapped, "the wrapped model changed"
    np.testing.assert_allclose(to_numpy(folded(x)), trained, atol=OUTPUT_TOLERANCE * np.abs(trained).max())
    # A plain model again: it clones (and so saves) with its weights, the nested block's included.
    np.testing.assert_array_equal(to_numpy(copy_model(folded)(x)), to_numpy(folded(x)))
    np.testing.assert_allclose(to_numpy(normalized(x)), trained, atol=0, err_msg="fold changed the wrapped model")


def test_predicate_selects_the_layers():
    normalized = reparametrize(
        functional_cnn(),
        lambda layer: WeightNormalization(layer, data_init=False),
        predicate=lambda layer: isinstance(layer, keras.layers.Dense),
    )
    assert [type(w.layer).__name__ for w in wrappers_in(normalized)] == ["Dense"]
    assert not wrappers_in(normalized)[0].data_init


def test_a_wrapped_model_is_not_wrapped_twice():
    with pytest.raises(ValueError, match="fold it first"):
        weight_normalize(weight_normalize(sequential_mlp()))


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: WeightNormalization("dense"), TypeError, "layer"),
        (lambda: WeightNormalization(keras.layers.Dense(3), data_init="yes"), TypeError, "data_init"),
        (lambda: WeightNormalization(keras.layers.Dropout(0.5, name="drop")).build((None, 4)), ValueError, "'drop'"),
        (lambda: WeightNormalization(keras.layers.Embedding(5, 3)).build((None, 4)), ValueError, "`kernel`"),
        (lambda: weight_normalize("model"), TypeError, "model"),
        (lambda: weight_normalize(sequential_mlp(), data_init=1), TypeError, "data_init"),
        (lambda: reparametrize(sequential_mlp(), wrapper=3), TypeError, "wrapper"),
        (lambda: reparametrize(sequential_mlp(), WeightNormalization, predicate="dense"), TypeError, "predicate"),
    ],
    ids=[
        "not_a_layer",
        "data_init",
        "no_kernel",
        "embedding",
        "not_a_model",
        "surgery_data_init",
        "wrapper",
        "predicate",
    ],
)
def test_bad_arguments_raise(make, error, match):
    with pytest.raises(error, match=match):
        make()
