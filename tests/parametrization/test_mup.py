"""muP for Keras (keras_norms.parametrization): shapes, multipliers, the optimizer wrapper, the coordinate check.

Against float64 numpy (tests/oracles/mup.py) and the multiplier table `mup` 1.0.0 gives; the
trajectory cross-check against the `mup` package itself is in test_mup_reference.py (torch run).
"""

import math

import keras
import numpy as np
import pytest

from keras_norms import parametrization
from keras_norms.optimizers import SGDP, AdamP, LearningRateMultipliers
from keras_norms.parametrization import MuMultiHeadAttention, MuReadout
from tests.oracles import mup as oracle

BASE_WIDTH = 64
D_IN, D_OUT = 8, 5
STEPS = 4


def keras_mlp(width):
    dense = {"activation": "tanh", "dtype": "float64"}
    return keras.Sequential(
        [
            keras.Input((D_IN,), dtype="float64"),
            keras.layers.Dense(width, name="hidden_1", **dense),
            keras.layers.Dense(width, name="hidden_2", **dense),
            MuReadout(D_OUT, name="readout", dtype="float64"),
        ]
    )


def test_multiplier_table_of_the_spec():
    """`mup` 1.0.0 run at widths 256 and 1024 against base 64 (m = 4, 16)."""
    base = keras_mlp(BASE_WIDTH)
    for width, m in ((256, 4.0), (1024, 16.0)):
        model = keras_mlp(width)
        shapes = parametrization.set_base_shapes(model, base)
        adam = parametrization.mup_multipliers(shapes, "adam")
        sgd = parametrization.mup_multipliers(shapes, "sgd")
        paths = {
            name: [v.path for v in model.get_layer(name).trainable_variables]
            for name in ("hidden_1", "hidden_2", "readout")
        }
        kernel_1, bias_1 = paths["hidden_1"]
        kernel_2, bias_2 = paths["hidden_2"]
        readout_kernel, readout_bias = paths["readout"]
        assert adam == {kernel_2: 1 / m}
        assert sgd == {kernel_1: m, bias_1: m, bias_2: m, readout_kernel: m}
        assert shapes[readout_bias].kind == "fixed" and shapes[kernel_2].kind == "matrix"


def test_width_shapes_of_keras_layers():
    """Fan-in axes from each layer's layout: Conv, ConvTranspose, Depthwise, Embedding, EinsumDense."""

    def model(width):
        images = keras.Input((6, 6, 3))
        x = keras.layers.Conv2D(width, 3, name="conv_in")(images)
        x = keras.layers.DepthwiseConv2D(3, name="depthwise")(x)
        x = keras.layers.Conv2DTranspose(width, 3, name="transpose")(x)
        x = keras.layers.Conv2D(2 * width, 1, name="conv_hidden")(x)
        tokens = keras.layers.Reshape((-1, 2 * width))(x)
        x = keras.layers.MultiHeadAttention(2, width, name="attention")(tokens, tokens)
        return keras.Model(images, MuReadout(3, name="readout")(x))

    built = model(16)
    shapes = parametrization.infer_width_shapes(built, model(4))
    kinds = {}
    for path, shape in shapes.items():
        name = "/".join(path.split("/")[-3:] if "attention/" in path else path.split("/")[-2:])
        kinds[name] = (shape.kind, shape.fan_in_mult, shape.fan_out_mult)
    assert kinds["conv_in/kernel"] == ("vector", 1.0, 4.0)
    assert kinds["depthwise/kernel"] == ("vector", 1.0, 4.0)
    assert kinds["transpose/kernel"] == ("matrix", 4.0, 4.0)
    assert kinds["conv_hidden/kernel"] == ("matrix", 4.0, 4.0)
    assert kinds["attention/query/kernel"] == ("matrix", 4.0, 4.0)
    assert kinds["attention/query/bias"] == ("vector", 1.0, 4.0)
    assert kinds["attention/attention_output/kernel"] == ("matrix", 4.0, 4.0)
    assert kinds["readout/kernel"] == ("vector", 4.0, 1.0)
    assert [shape.readout for shape in shapes.values()].count(True) == 1
    assert kinds["readout/bias"] == ("fixed", 1.0, 1.0)


def test_set_base_shapes_rescales_to_the_base_scale():
    """Glorot: the input and readout kernels get their base-width variance back; hidden kernels keep theirs."""
    model, base = keras_mlp(256), keras_mlp(BASE_WIDTH)
    before = {v.path: keras.ops.convert_to_numpy(v.value) for v in model.trainable_variables}
    parametrization.set_base_shapes(model, base)
    after = {v.path: keras.ops.convert_to_numpy(v.value) for v in model.trainable_variables}
    kernels = [model.get_layer(name).kernel.path for name in ("hidden_1", "hidden_2", "readout")]
    glorot = {kernels[0]: (D_IN, 256, D_IN, BASE_WIDTH), kernels[2]: (256, D_OUT, BASE_WIDTH, D_OUT)}
    for path, (fan_in, fan_out, base_in, base_out) in glorot.items():
        factor = math.sqrt((fan_in + fan_out) / (base_in + base_out))
        np.testing.assert_allclose(after[path], before[path] * factor, rtol=1e-12)
    np.testing.assert_array_equal(after[kernels[1]], before[kernels[1]])  # 2/(n+n) = 1/n: muP already


def test_set_base_shapes_keeps_attention_kernels_drawn_with_their_einsum_axes():
    """EinsumDense draws Glorot over (d, heads * head_dim): hidden, already muP; nothing to rescale."""

    def model(width):
        tokens = keras.Input((5, width))
        attention = MuMultiHeadAttention(num_heads=2, key_dim=width // 2, name="attention")(tokens, tokens)
        return keras.Model(tokens, MuReadout(3, name="readout")(attention))

    built = model(64)
    attention = built.get_layer("attention")
    kernels = [attention.query_dense.kernel, attention.key_dense.kernel, attention.output_dense.kernel]
    before = [keras.ops.convert_to_numpy(k.value) for k in kernels]
    parametrization.set_base_shapes(built, model(16))
    for kernel, value in zip(kernels, before):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(kernel.value), value)


@pytest.mark.parametrize("kind", ["sgd_momentum", "adam"])
def test_learning_rate_multipliers_against_numpy(kind, rng):
    shapes = [(5, 3), (3,), (2, 2, 3)]
    multipliers = [0.25, 3.0, 1.0]
    params = [rng.standard_normal(shape) for shape in shapes]
    grads = [[rng.standard_normal(shape) for shape in shapes] for _ in range(STEPS)]
    variables = [keras.Variable(p.astype("float32"), name=f"w{i}") for i, p in enumerate(params)]
    if kind == "adam":
        inner = keras.optimizers.Adam(0.01)
        expected = oracle.adam(params, grads, [0.01 * m for m in multipliers])
    else:
        inner = keras.optimizers.SGD(0.1, momentum=0.9)
        expected = oracle.sgd(params, grads, [0.1 * m for m in multipliers], momentum=0.9)
    optimizer = LearningRateMultipliers(inner, {v.path: m for v, m in zip(variables, multipliers)})
    for step_grads in grads:
        optimizer.apply([keras.ops.convert_to_tensor(g.astype("float32")) for g in step_grads], variables)
    for variable, value in zip(variables, expected):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable.value), value, rtol=0, atol=1e-5)
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == STEPS


@pytest.mark.parametrize("optimizer_cls", [AdamP, SGDP])
def test_adamp_and_sgdp_with_a_multiplier_are_them_at_that_rate(optimizer_cls, rng):
    """Wrapped AdamP/SGDP with multiplier m step exactly as AdamP/SGDP at learning rate m * lr."""
    kwargs = {"weight_decay": 1e-2} if optimizer_cls is AdamP else {"momentum": 0.9, "weight_decay": 1e-2}
    start = rng.standard_normal((6, 4)).astype("float32")
    wrapped_variable, plain_variable = keras.Variable(start), keras.Variable(start)
    wrapped = LearningRateMultipliers(optimizer_cls(0.02, **kwargs), {wrapped_variable.path: 0.25})
    plain = optimizer_cls(0.005, **kwargs)
    for _ in range(STEPS):
        gradient = rng.standard_normal((6, 4)).astype("float32")
        gradient = keras.ops.convert_to_tensor(gradient)
        wrapped.apply([gradient], [wrapped_variable])
        plain.apply([gradient], [plain_variable])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(wrapped_variable.value), keras.ops.convert_to_numpy(plain_variable.value), atol=1e-6
    )


def _two_layer_model(policy):
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)])
    keras.config.set_dtype_policy("float32")
    return model


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_fit_with_jit_and_mixed_precision_scales_the_step(policy, rng):
    """One `fit` step: the multiplied kernel moves exactly 0.25 times as far as without the wrapper."""
    x, y = rng.standard_normal((32, 4)).astype("float32"), rng.standard_normal((32, 2)).astype("float32")
    moves = []
    for wrap in (True, False):
        model = _two_layer_model(policy)
        kernel = model.layers[0].kernel
        optimizer = keras.optimizers.SGD(0.1)
        if wrap:
            optimizer = LearningRateMultipliers(optimizer, {kernel.path: 0.25})
        model.compile(optimizer=optimizer, loss="mse", jit_compile=keras.backend.backend() != "torch")
        before = keras.ops.convert_to_numpy(kernel.value)
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        moves.append(keras.ops.convert_to_numpy(kernel.value) - before)
        if policy == "mixed_float16":
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert np.max(np.abs(moves[1])) > 0
    np.testing.assert_allclose(moves[0], 0.25 * moves[1], rtol=1e-5, atol=1e-7)


def test_save_load_resumes_the_same_training(tmp_path, rng):
    x, y = rng.standard_normal((32, D_IN)).astype("float32"), rng.standard_normal((32, D_OUT)).astype("float32")

    def mlp(width):
        return keras.Sequential(
            [keras.Input((D_IN,)), keras.layers.Dense(width, activation="relu"), MuReadout(D_OUT, output_mult=2.0)]
        )

    model = mlp(128)
    shapes = parametrization.set_base_shapes(model, mlp(32))
    model.compile(optimizer=parametrization.mu_optimizer(keras.optimizers.Adam(1e-2), shapes), loss="mse")
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "mup.keras")
    loaded = keras.saving.load_model(tmp_path / "mup.keras")
    assert isinstance(loaded.optimizer, LearningRateMultipliers)
    assert loaded.layers[-1].width_mult == 4.0 and loaded.layers[-1].output_mult == 2.0
    first = model.fit(x, y, epochs=2, verbose=0).history["loss"]
    second = loaded.fit(x, y, epochs=2, verbose=0).history["loss"]
    np.testing.assert_allclose(second, first, rtol=1e-6)
    for a, b in zip(model.trainable_variables, loaded.trainable_variables):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(b.value), keras.ops.convert_to_numpy(a.value), atol=1e-6)


def test_attention_scale_against_numpy_and_after_loading(tmp_path, rng):
    """Logits `q.k * attention_mult / key_dim`, also after `set_attention_scale` and a reload."""
    x = rng.standard_normal((2, 5, 12)).astype("float32")
    layer = MuMultiHeadAttention(num_heads=3, key_dim=4, attention_mult=1.5, use_bias=False)
    out = keras.ops.convert_to_numpy(layer(x, x))
    wq, wk, wv = (
        keras.ops.convert_to_numpy(d.kernel).astype(np.float64)
        for d in (layer.query_dense, layer.key_dense, layer.value_dense)
    )
    wo = keras.ops.convert_to_numpy(layer.output_dense.kernel).astype(np.float64)
    q, k, v = (np.einsum("btd,dhk->bhtk", x.astype(np.float64), w) for w in (wq, wk, wv))
    logits = np.einsum("bhtk,bhsk->bhts", q, k) * 1.5 / 4
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    expected = np.einsum("bhtk,hkd->btd", np.einsum("bhts,bhsk->bhtk", weights, v), wo)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)

    plain = keras.layers.MultiHeadAttention(num_heads=3, key_dim=4, use_bias=False)
    plain(x, x)
    plain.set_weights(layer.get_weights())
    wrapper = keras.Sequential([keras.Input((5, 12)), keras.layers.Lambda(lambda t: t)])
    wrapper._layers.append(plain)  # a container, as keras-hub's blocks are
    assert parametrization.set_attention_scale(wrapper, attention_mult=1.5) == 1
    np.testing.assert_allclose(keras.ops.convert_to_numpy(plain(x, x)), out, atol=1e-6)

    inputs = keras.Input((5, 12))
    model = keras.Model(inputs, layer(inputs, inputs))
    model.save(tmp_path / "attention.keras")
    loaded = keras.saving.load_model(tmp_path / "attention.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), out, atol=1e-6)


def test_coordinate_check_is_flat_under_mup_and_grows_under_standard(rng):
    """Adam: coordinates blow up (readout) or vanish (input layer) with width in SP, stay put in muP."""
    x, y = rng.standard_normal((64, D_IN)).astype("float32"), rng.standard_normal((64, D_OUT)).astype("float32")

    def mlp(width, readout):
        return keras.Sequential(
            [
                keras.Input((D_IN,)),
                keras.layers.Dense(width, activation="relu", name="hidden_1"),
                keras.layers.Dense(width, activation="relu", name="hidden_2"),
                readout(D_OUT, name="readout"),
            ]
        )

    def standard(width):
        return mlp(width, keras.layers.Dense), keras.optimizers.Adam(0.02)

    def mu(width):
        model = mlp(width, MuReadout)
        shapes = parametrization.set_base_shapes(model, mlp(32, MuReadout))
        return model, parametrization.mu_optimizer(keras.optimizers.Adam(0.02), shapes)

    widths = (32, 128, 512)
    growth = {}
    for name, model_fn in (("standard", standard), ("mup", mu)):
        points = parametrization.coord_check(model_fn, widths, x, y, loss="mse", steps=1, seeds=(0,))
        size = {(p.layer, p.step, p.width): p.size for p in points}
        # After one Adam step, the standard readout moves ~ lr * width (measured 14x from 32 to 512).
        growth[name, "readout"] = size["readout", 1, 512] / size["readout", 1, 32]
        # At initialization, Glorot shrinks the input layer's coordinates like 1/sqrt(width) (measured 0.29x).
        growth[name, "hidden_1"] = size["hidden_1", 0, 512] / size["hidden_1", 0, 32]
    assert growth["standard", "readout"] > 4.0, growth
    assert growth["standard", "hidden_1"] < 0.5, growth
    assert 0.5 < growth["mup", "readout"] < 2.0, growth
    assert 0.75 < growth["mup", "hidden_1"] < 1.33, growth


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: parametrization.set_base_shapes(keras_mlp(64), keras.Sequential([keras.Input((3,)), MuReadout(2)])),
            ValueError,
            "architecture",
        ),
        (lambda: LearningRateMultipliers(keras.optimizers.Adam(), {"a/kernel": -1.0}), ValueError, "a/kernel"),
        (lambda: LearningRateMultipliers(keras.optimizers.Adam(), {"a": float("nan")}), ValueError, "nan"),
        (lambda: LearningRateMultipliers(keras.optimizers.Adam(), [0.5]), TypeError, "multipliers"),
        (lambda: LearningRateMultipliers("adam", {}), TypeError, "optimizer='adam'"),
        (lambda: LearningRateMultipliers(keras.optimizers.Adam(), {}, weight_decay=0.1), ValueError, "weight_decay"),
        (lambda: parametrization.mu_optimizer(keras.optimizers.Ftrl(), {}), ValueError, "Ftrl"),
        (lambda: parametrization.mup_multipliers({}, "adamw"), ValueError, "rule"),
        (lambda: MuReadout(3, zero_init=True, kernel_initializer="ones"), ValueError, "kernel_initializer"),
        (lambda: MuReadout(3, width_mult=0.0), ValueError, "width_mult"),
        (lambda: MuMultiHeadAttention(2, 4, attention_mult=-1.0), ValueError, "attention_mult"),
        (lambda: parametrization.coord_check(lambda w: None, [], None, None, "mse"), ValueError, "widths"),
    ],
)
def test_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bad_models_raise():
    def plain_head(width):
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(width), keras.layers.Dense(3, name="head")])

    with pytest.raises(ValueError, match="'head'.*MuReadout"):
        parametrization.set_base_shapes(plain_head(64), plain_head(16))

    def identity_init(width):
        return keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(width, kernel_initializer="identity"), MuReadout(3)]
        )

    with pytest.raises(ValueError, match="Identity"):
        parametrization.set_base_shapes(identity_init(64), identity_init(16))

    model = keras_mlp(64)
    with pytest.raises(ValueError, match="do not grow"):  # delta says the hidden width is fixed
        parametrization.set_base_shapes(model, keras_mlp(16), delta=keras_mlp(16))

    optimizer = LearningRateMultipliers(keras.optimizers.SGD(), {"elsewhere/kernel": 2.0})
    with pytest.raises(ValueError, match="elsewhere/kernel"):
        optimizer.build(model.trainable_variables)
