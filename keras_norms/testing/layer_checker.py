"""The generic checks every keras-norms layer passes, on whichever backend Keras runs.

`check_layer` does for a layer what Keras' private `run_layer_test` does for core layers, plus
what a third-party layer most often gets wrong: a `.keras` file reloaded in a *fresh* Python
process (where only `import keras_norms` registers the class), both mixed-precision policies,
and mask propagation through a functional model. Each layer's own tests then only check its
math against a float64 oracle.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
from keras import ops

MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")
# Mixed-precision outputs may differ from float32 ones by this many units of the compute dtype's
# rounding (its machine epsilon, below), relative to the output scale.
MIXED_PRECISION_ULPS = 4
MACHINE_EPSILON = {"float16": 2.0**-10, "bfloat16": 2.0**-7}


def check_layer(
    layer_cls,
    init_kwargs,
    input_shape,
    tmp_dir,
    *,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights=0,
    supports_masking=True,
    mask_axis=-1,
    jit_compile_true=False,
    unchanged_by_fit=(),
    seed=None,
):
    """Runs every generic check on `layer_cls(**init_kwargs)` with inputs of `input_shape`.

    Args:
        layer_cls: The layer class.
        init_kwargs: Constructor arguments.
        input_shape: Full input shape, batch included.
        tmp_dir: A directory for the `.keras` file and the reference outputs.
        expected_num_trainable_weights, expected_num_non_trainable_weights: Weight counts after
            `build`.
        supports_masking: Whether the layer takes and propagates a Keras mask.
        mask_axis: The input axis the mask leaves out (the channels axis).
        jit_compile_true: Also run the `model.fit` step with `jit_compile=True`.
        unchanged_by_fit: Names of weights that a float32 fit step may leave as they are;
            every other weight must change.
        seed: Seed of the random inputs.
    """
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(input_shape) * 1.5 + 0.3).astype("float32")
    _check_config_round_trip(layer_cls, init_kwargs)
    _check_build(
        layer_cls(**init_kwargs),
        input_shape,
        expected_num_trainable_weights,
        expected_num_non_trainable_weights,
        supports_masking,
    )
    _check_symbolic_call(layer_cls(**init_kwargs), input_shape)
    _check_eager_call(layer_cls(**init_kwargs), x)
    _check_fit_step(layer_cls, init_kwargs, x, "auto", unchanged_by_fit)
    if jit_compile_true:
        _check_fit_step(layer_cls, init_kwargs, x, True, unchanged_by_fit)
    for policy in MIXED_POLICIES:
        _check_mixed_precision(layer_cls, init_kwargs, x, policy)
    if supports_masking:
        mask_shape = list(input_shape)
        del mask_shape[mask_axis]
        mask = rng.random(mask_shape) > 0.3
        _check_mask_propagation(layer_cls(**init_kwargs), x, mask)
    _check_save_and_load_in_fresh_process(layer_cls, init_kwargs, x, tmp_dir)


def _check_config_round_trip(layer_cls, init_kwargs):
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for name, value in init_kwargs.items():
        if isinstance(value, (bool, int, float, str, type(None))):
            assert config[name] == value, f"get_config()[{name!r}] = {config[name]!r} != {value!r}"
    revived = layer_cls.from_config(config)
    assert revived.get_config() == config, "from_config(get_config()) changed the config"
    serialized = keras.saving.serialize_keras_object(layer)
    deserialized = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(deserialized) is layer_cls, f"deserialized to {type(deserialized)}"
    assert deserialized.get_config() == config, "serialize/deserialize changed the config"


def _check_build(layer, input_shape, num_trainable, num_non_trainable, supports_masking):
    layer.build(input_shape)
    assert layer.built
    assert len(layer.trainable_weights) == num_trainable, (
        f"{len(layer.trainable_weights)} trainable weights, expected {num_trainable}: "
        f"{[w.path for w in layer.trainable_weights]}"
    )
    assert len(layer.non_trainable_weights) == num_non_trainable, (
        f"{len(layer.non_trainable_weights)} non-trainable weights, expected {num_non_trainable}"
    )
    assert layer.supports_masking == supports_masking


def _check_symbolic_call(layer, input_shape):
    for shape in (tuple(input_shape), (None, *input_shape[1:])):
        output = layer(keras.KerasTensor(shape, dtype="float32"))
        expected_shape = tuple(layer.compute_output_shape(shape))
        assert tuple(output.shape) == expected_shape, (
            f"symbolic output shape {output.shape}, compute_output_shape {expected_shape}, input shape {shape}"
        )
        assert expected_shape[:1] == shape[:1], f"batch axis changed: {shape} -> {expected_shape}"
        assert output.dtype == layer.compute_dtype, f"symbolic dtype {output.dtype}"


def _check_eager_call(layer, x):
    for training in (True, False):
        y = layer(x, training=training)
        assert tuple(y.shape) == tuple(layer.compute_output_shape(x.shape))
        assert keras.backend.standardize_dtype(y.dtype) == layer.compute_dtype
        assert np.all(np.isfinite(ops.convert_to_numpy(y))), f"non-finite output, training={training}"


def _model(layer, input_shape):
    inputs = keras.Input(input_shape[1:], batch_size=None)
    return keras.Model(inputs, layer(inputs))


def _check_fit_step(layer_cls, init_kwargs, x, jit_compile, unchanged_by_fit):
    layer = layer_cls(**init_kwargs)
    model = _model(layer, x.shape)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=jit_compile)
    before = [np.array(ops.convert_to_numpy(w.value)) for w in model.weights]
    target = np.zeros(layer.compute_output_shape(x.shape), "float32") + 0.5
    history = model.fit(x, target, batch_size=x.shape[0], epochs=1, verbose=0)
    loss = history.history["loss"][0]
    assert np.isfinite(loss), f"fit loss {loss} with jit_compile={jit_compile}"
    after = [ops.convert_to_numpy(w.value) for w in model.weights]
    for weight, old, new in zip(model.weights, before, after):
        assert np.all(np.isfinite(new)), f"{weight.path} non-finite after fit"
        assert weight.name in unchanged_by_fit or not np.array_equal(old, new), (
            f"{weight.path} did not change in a fit step (jit_compile={jit_compile})"
        )


def _check_mixed_precision(layer_cls, init_kwargs, x, policy):
    """The layer under `policy` against the same layer in float32: same weights, same input values.

    The input is rounded to the compute dtype once and the float32 layer gets that rounded input
    too, so what is compared is the layer's arithmetic alone. Bound: `MIXED_PRECISION_ULPS` units
    of the compute dtype's rounding (its machine epsilon) times the output scale, the largest
    |float32 output|. That covers rounding the output itself (half a unit), the weights the layer
    casts to the compute dtype (half a unit each, through a short dot product or an affine) and a
    few elementwise operations in low precision; statistics are float32 in every keras-norms layer.
    The same bound as the pure float16/bfloat16 test's in tests/catalogue/test_dtypes.py; measured
    at most 0.7 units on jax, tensorflow and torch for every layer the tests check.
    """
    compute_dtype = keras.DTypePolicy(policy).compute_dtype
    layer = layer_cls(**init_kwargs, dtype=policy)
    reference = layer_cls(**init_kwargs, dtype="float32")
    layer.build(x.shape)
    reference.build(x.shape)
    assert [(w.name, tuple(w.shape)) for w in layer.weights] == [(w.name, tuple(w.shape)) for w in reference.weights]
    for target, source in zip(reference.weights, layer.weights):
        target.assign(source.value)  # random initializers drew different values
    x_low = ops.cast(x, compute_dtype)
    x_rounded = ops.cast(x_low, "float32")
    tolerance = MIXED_PRECISION_ULPS * MACHINE_EPSILON[compute_dtype]
    for training in (True, False):  # training first: moving statistics then differ by rounding alone
        y = layer(x_low, training=training)
        assert keras.backend.standardize_dtype(y.dtype) == compute_dtype, (
            f"{policy}: output dtype {y.dtype}, expected {compute_dtype}"
        )
        values = ops.convert_to_numpy(ops.cast(y, "float32")).astype("float64")
        assert np.all(np.isfinite(values)), f"{policy}: non-finite output, training={training}"
        expected = ops.convert_to_numpy(reference(x_rounded, training=training)).astype("float64")
        scale = float(np.max(np.abs(expected)))
        error = float(np.max(np.abs(values - expected)))
        assert error <= tolerance * scale, (
            f"{policy}, training={training}: largest difference from the float32 layer {error:.3g} with "
            f"output scale {scale:.3g}; allowed {tolerance * scale:.3g} ({MIXED_PRECISION_ULPS} units of "
            f"{compute_dtype} rounding, {MACHINE_EPSILON[compute_dtype]:g}, times the scale)"
        )
    for weight in layer.weights:
        if "float" in weight.dtype:  # integer state (step counters) keeps its dtype
            assert weight.dtype == "float32", f"{policy}: weight {weight.path} is {weight.dtype}"


class _MaskEcho(keras.layers.Layer):
    """Outputs the mask it receives, so a model shows what mask reached it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        return ops.cast(mask, "float32")

    def compute_output_shape(self, input_shape):
        return input_shape[:-1]


class _AttachMask(keras.layers.Layer):
    """`[x, mask] -> x` carrying `mask` as its Keras mask, as an Embedding or Masking layer would."""

    def call(self, inputs):
        return inputs[0]

    def compute_mask(self, inputs, previous_mask=None):
        return inputs[1]

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def _check_mask_propagation(layer, x, mask):
    inputs = keras.Input(x.shape[1:])
    mask_input = keras.Input(mask.shape[1:], dtype="bool")
    # The layer receives the mask the way Keras hands it on, not as an explicit argument.
    outputs = layer(_AttachMask()([inputs, mask_input]))
    echo = _MaskEcho()(outputs)
    model = keras.Model([inputs, mask_input], [outputs, echo])
    y, received = model([x, mask], training=False)
    assert np.all(np.isfinite(ops.convert_to_numpy(y)))
    np.testing.assert_array_equal(ops.convert_to_numpy(received), mask.astype("float32"), err_msg="mask not propagated")


def _check_save_and_load_in_fresh_process(layer_cls, init_kwargs, x, tmp_dir):
    model = _model(layer_cls(**init_kwargs), x.shape)
    # One training call first, so that saved state (moving statistics) is not the initial one.
    model(x, training=True)
    expected = ops.convert_to_numpy(model(x, training=False))
    model_path = os.path.join(tmp_dir, "model.keras")
    data_path = os.path.join(tmp_dir, "data.npz")
    model.save(model_path)
    np.savez(data_path, x=x, expected=expected)
    result = subprocess.run(
        [sys.executable, "-m", "keras_norms.testing.reload_check", model_path, data_path],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
    )
    assert result.returncode == 0, f"reload in a fresh process failed:\n{result.stderr[-3000:]}"
